"""Snapshot package names, as the INE names its PREP packages.

``YYYYMMDD_HHMM_PREP_<ELECCION>.zip`` (or ``.tar.gz``), where the date and time are the cut
time in the election's local time zone. The cut time orders snapshots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from difusion.errors import PackageRejected, RejectionCode

_NAME = re.compile(
    r"^(?P<date>\d{8})_(?P<time>\d{4})_PREP_(?P<election>[A-Z0-9]+(?:_[A-Z0-9]+)*)"
    r"\.(?P<ext>zip|tar\.gz|tgz)$"
)


class ArchiveFormat(StrEnum):
    ZIP = "zip"
    TAR_GZ = "tar.gz"


@dataclass(frozen=True)
class PackageName:
    """A parsed package name: which election, which cut, which archive format."""

    file_name: str
    snapshot_id: str
    election: str
    cut_time: datetime
    archive_format: ArchiveFormat


def parse_package_name(key: str, time_zone: str) -> PackageName:
    """Parse an object key (``incoming/<name>``) into a :class:`PackageName`.

    Raises :class:`PackageRejected` with ``bad_name`` when the name does not follow the
    convention or names an impossible date or time.
    """
    file_name = key.rsplit("/", 1)[-1]
    match = _NAME.match(file_name)
    if match is None:
        raise PackageRejected(
            RejectionCode.BAD_NAME,
            f"package name {file_name!r} does not follow YYYYMMDD_HHMM_PREP_<ELECCION>.zip "
            "(or .tar.gz)",
        )
    try:
        naive = datetime.strptime(match["date"] + match["time"], "%Y%m%d%H%M")
    except ValueError:
        raise PackageRejected(
            RejectionCode.BAD_NAME,
            f"package name {file_name!r} has an impossible cut date or time",
        ) from None
    ext = match["ext"]
    archive_format = ArchiveFormat.ZIP if ext == "zip" else ArchiveFormat.TAR_GZ
    snapshot_id = file_name[: -len(ext) - 1]
    return PackageName(
        file_name=file_name,
        snapshot_id=snapshot_id,
        election=match["election"],
        cut_time=naive.replace(tzinfo=ZoneInfo(time_zone)),
        archive_format=archive_format,
    )


def snapshot_id_of(file_name: str) -> str:
    """The ledger id of an upload: its name without the archive extension, parsed or not."""
    for extension in (".tar.gz", ".tgz", ".zip"):
        if file_name.endswith(extension):
            return file_name[: -len(extension)]
    return file_name


# How far ahead of the clock a cut time may be (the uploader's and AWS's clocks differ).
FUTURE_CUT_TOLERANCE = timedelta(minutes=5)


def refuse_future_cut(name: PackageName, now: datetime) -> None:
    """A cut time ahead of the clock is refused: accepted, it would make every real cut
    after it stale, and the night's publication would stop until it is withdrawn."""
    if name.cut_time > now + FUTURE_CUT_TOLERANCE:
        raise PackageRejected(
            RejectionCode.FUTURE_CUT,
            f"cut time {name.cut_time.isoformat()} is in the future (now "
            f"{now.isoformat(timespec='seconds')}); a package is cut before it is uploaded",
        )
