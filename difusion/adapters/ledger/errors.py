"""What the ledger's conditional writes refuse, as exceptions the services act on."""

from __future__ import annotations

from difusion.errors import RetryLater


class HeadMoved(Exception):
    """Another snapshot was accepted since the head was read."""


class AlreadyPublished(Exception):
    """The difusor already publishes this sequence or a newer one."""


class DifusorBusy(RetryLater):
    """Another delivery to the same difusor holds the lease (until ``seconds`` from now)."""


class WindowNotOpen(Exception):
    """The window can only be closed early while it is open."""


class PeriodAlreadyChecked(Exception):
    """Another run of the monitor already recorded this period for this difusor."""


class AlreadyFinalized(Exception):
    """The closing record was already written."""
