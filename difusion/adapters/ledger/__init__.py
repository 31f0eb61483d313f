"""The ledger (DynamoDB): every snapshot, every delivery, and what each difusor publishes.

One table, partitioned by election so drills never mix with the official night::

    pk = ELECTION#<id>   sk = HEAD                          newest accepted snapshot
                         sk = SNAPSHOT#<snapshot_id>        one per snapshot
                         sk = REJECTION#<snapshot_id>#<at>  a refused re-upload of an accepted one
                         sk = DELIVERY#<snapshot_id>#<difusor_id>
                         sk = PUBLISHED#<difusor_id>        what that difusor publishes now
                         sk = WINDOW                        the publication window's state
                         sk = MONITOR#<difusor_id>          the continuity monitor's memory
                         sk = CHECK#<period>#<difusor_id>   one site check
                         sk = INCIDENT#<period>#<difusor>   an incident, from start to end
                         sk = UPSTREAM#MONITOR | UPSTREAM#CHECK#<period>
                              | UPSTREAM#INCIDENT#<period>  the same for the upstream
                         sk = FINAL                         the closing record, written once

Invariants are conditional writes, not read-then-write: the head only advances from the
head the writer saw, and a difusor's published sequence only moves forward.
"""

from __future__ import annotations

from difusion.adapters.ledger.checks import UPSTREAM, CheckRecords
from difusion.adapters.ledger.closing import ClosingRecords
from difusion.adapters.ledger.deliveries import DeliveryRecords
from difusion.adapters.ledger.errors import (
    AlreadyFinalized,
    AlreadyPublished,
    DifusorBusy,
    HeadMoved,
    PeriodAlreadyChecked,
    WindowNotOpen,
)
from difusion.adapters.ledger.snapshots import SnapshotRecords
from difusion.adapters.ledger.table import lease_owner
from difusion.adapters.ledger.window import WindowRecords

__all__ = [
    "UPSTREAM",
    "AlreadyFinalized",
    "AlreadyPublished",
    "DifusorBusy",
    "HeadMoved",
    "Ledger",
    "PeriodAlreadyChecked",
    "WindowNotOpen",
    "lease_owner",
]


class Ledger(SnapshotRecords, WindowRecords, DeliveryRecords, CheckRecords, ClosingRecords):
    """The whole ledger of one election: each concern's records in its own module."""
