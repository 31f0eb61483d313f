from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from difusion.errors import PackageRejected, RejectionCode
from difusion.package_name import (
    FUTURE_CUT_TOLERANCE,
    ArchiveFormat,
    parse_package_name,
    refuse_future_cut,
    snapshot_id_of,
)

TZ = "America/Mazatlan"


def test_an_ine_style_name_gives_election_cut_time_and_format():
    name = parse_package_name("incoming/20240602_2120_PREP_DIP_LOC_BCS.zip", TZ)
    assert name.snapshot_id == "20240602_2120_PREP_DIP_LOC_BCS"
    assert name.election == "DIP_LOC_BCS"
    assert name.archive_format is ArchiveFormat.ZIP
    # 21:20 in Baja California Sur is 04:20 UTC the next day (UTC-7, no DST)
    assert name.cut_time.astimezone(UTC) == datetime(2024, 6, 3, 4, 20, tzinfo=UTC)


@pytest.mark.parametrize("suffix", ["tar.gz", "tgz"])
def test_tar_gz_packages_are_accepted(suffix):
    name = parse_package_name(f"20240602_2140_PREP_AYUN_BCS.{suffix}", TZ)
    assert name.archive_format is ArchiveFormat.TAR_GZ
    assert name.snapshot_id == "20240602_2140_PREP_AYUN_BCS"


def test_cut_times_order_snapshots():
    earlier = parse_package_name("20240602_2120_PREP_DIP_LOC_BCS.zip", TZ)
    later = parse_package_name("20240602_2140_PREP_DIP_LOC_BCS.zip", TZ)
    assert earlier.cut_time < later.cut_time


@pytest.mark.parametrize(
    "file_name",
    [
        "resultados.zip",
        "20240602_2120_PREP_DIP_LOC_BCS.rar",
        "20240602_2120_DIP_LOC_BCS.zip",
        "2024062_2120_PREP_DIP_LOC_BCS.zip",
        "20240602_2120_PREP_dip_loc_bcs.zip",
        "20240602_2120_PREP_.zip",
        "20240631_2120_PREP_DIP_LOC_BCS.zip",  # June has 30 days
        "20240602_2460_PREP_DIP_LOC_BCS.zip",
    ],
)
def test_names_that_do_not_parse_are_rejected(file_name):
    with pytest.raises(PackageRejected) as caught:
        parse_package_name(f"incoming/{file_name}", TZ)
    assert caught.value.code is RejectionCode.BAD_NAME
    assert file_name in caught.value.reason


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("20240602_2120_PREP_DIP_LOC_BCS.zip", "20240602_2120_PREP_DIP_LOC_BCS"),
        ("x.tar.gz", "x"),
        ("notes.txt", "notes.txt"),
    ],
)
def test_every_upload_gets_a_ledger_id(file_name, expected):
    assert snapshot_id_of(file_name) == expected


def test_a_cut_from_the_future_is_refused_it_would_block_every_later_cut():
    name = parse_package_name("20240602_2030_PREP_DIP_LOC_BCS.zip", "America/Mazatlan")
    refuse_future_cut(name, name.cut_time)  # cut, then uploaded
    refuse_future_cut(name, name.cut_time - FUTURE_CUT_TOLERANCE)  # clocks differ a little
    with pytest.raises(PackageRejected) as refused:
        refuse_future_cut(name, name.cut_time - FUTURE_CUT_TOLERANCE - timedelta(seconds=1))
    assert refused.value.code is RejectionCode.FUTURE_CUT and "future" in refused.value.reason
