"""The closing record and the public notices, built from the ledger's records alone."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from difusion.adapters.ledger.table import plain
from difusion.closing import (
    build_closing_record,
    closing_record_json,
    final_snapshot,
    render_closing_record_html,
    retained_package,
)
from difusion.models import Difusor, DifusorStatus, Head
from difusion.notice import LIST_HTML, LIST_JSON, NOTICE_PAGE, difusores_list, suspension_notice
from difusion.records import (
    CheckRecord,
    DeliveryRecord,
    IncidentRecord,
    RejectionRecord,
    SnapshotRecord,
)
from difusion.window import PublicationWindow, WindowRecord, WindowState
from tests import closing_night as night

OPENING = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)  # 20:00 in Baja California Sur
WINDOW = PublicationWindow(OPENING, OPENING + timedelta(hours=24), timedelta(minutes=15))
TZ = "America/Mazatlan"


def snapshot(sequence: int, cut: datetime, status: str = "accepted") -> SnapshotRecord:
    return SnapshotRecord(
        snapshot_id=f"s{sequence}",
        sequence=sequence,
        status=status,
        cut_time=cut.isoformat(),
        manifest_sha256=f"{sequence:064x}",
        manifest_key=f"manifests/{sequence:06}_s{sequence}.json",
    )


def delivery(sequence: int, difusor: str, started: datetime) -> DeliveryRecord:
    return DeliveryRecord(
        snapshot_id=f"s{sequence}",
        sequence=sequence,
        difusor_id=difusor,
        status="delivered",
        started_at=started.isoformat(),
        finished_at=(started + timedelta(seconds=3)).isoformat(),
        reason="accepted",
    )


def record(deliveries: list[DeliveryRecord], closed_early: bool = False) -> dict:
    closing = WINDOW.closing if not closed_early else OPENING + timedelta(hours=5)
    reason = "100% de actas" if closed_early else ""
    return build_closing_record(
        election="DIP_LOC_BCS",
        time_zone=TZ,
        window=WINDOW,
        record=WindowRecord(WindowState.CLOSED, closing, closed_early, OPENING, reason),
        snapshots=[
            snapshot(1, OPENING - timedelta(minutes=10)),
            snapshot(2, OPENING + timedelta(hours=4)),
            snapshot(3, OPENING + timedelta(hours=6)),
        ],
        deliveries=deliveries,
        incidents=[],
        checks=[],
        difusores=[{"difusor_id": "uabcs", "name": "UABCS", "status": "active"}],
        retained=[],
        generated_at=OPENING + timedelta(hours=25),
    )


def test_the_final_snapshot_is_the_newest_cut_at_or_before_the_close():
    snapshots = [snapshot(1, OPENING), snapshot(2, OPENING + timedelta(hours=2))]
    assert final_snapshot(snapshots, OPENING + timedelta(hours=3)).snapshot_id == "s2"
    assert final_snapshot(snapshots, OPENING + timedelta(hours=1)).snapshot_id == "s1"
    rejected = [*snapshots, snapshot(3, OPENING + timedelta(hours=2, minutes=5), "rejected")]
    assert final_snapshot(rejected, OPENING + timedelta(hours=3)).snapshot_id == "s2"


def test_an_early_close_moves_the_final_snapshot_and_is_stated_with_its_reason():
    early = record([], closed_early=True)
    assert early["final_snapshot"]["snapshot_id"] == "s2"
    assert early["window"]["closed_early"] and early["window"]["close_reason"] == "100% de actas"
    assert record([])["final_snapshot"]["snapshot_id"] == "s3"


def test_deliveries_outside_the_window_are_called_out():
    inside = delivery(1, "uabcs", OPENING + timedelta(seconds=1))
    before = delivery(1, "uabcs", OPENING - timedelta(seconds=30))
    assert record([inside])["deliveries_outside_window"] == []
    assert record([inside, before])["deliveries_outside_window"] == [
        {"difusor_id": "uabcs", "snapshot_id": "s1"}
    ]
    page = render_closing_record_html(record([inside, before]))
    assert "ATENCIÓN: 1 entregas fuera del periodo" in page
    assert "Ninguna entrega se publicó antes de la apertura" in render_closing_record_html(
        record([inside])
    )


def test_a_delivery_is_judged_by_when_its_publishing_attempt_started_not_when_it_ended():
    end_of_grace = WINDOW.closing + WINDOW.grace
    # Started in the last second of the grace, its manifest landed five minutes later
    overran = replace(
        delivery(3, "uabcs", end_of_grace - timedelta(seconds=1)),
        finished_at=(end_of_grace + timedelta(minutes=5)).isoformat(),
    )
    assert record([overran])["deliveries_outside_window"] == []
    # Started after the grace, or retried after it (the attempt that published counts)
    late = delivery(3, "uabcs", end_of_grace + timedelta(seconds=1))
    retried = replace(overran, attempt_started_at=late.started_at)
    for outside in (late, retried):
        assert record([outside])["deliveries_outside_window"] == [
            {"difusor_id": "uabcs", "snapshot_id": "s3"}
        ]


def test_the_record_reads_in_local_time_and_names_the_first_publication():
    result = record([delivery(2, "uabcs", OPENING + timedelta(hours=4, minutes=1))])
    published = {s["snapshot_id"]: s["first_published_at"] for s in result["snapshots_published"]}
    assert published["s1"] is None and published["s2"].startswith("2024-06-03T07:01")
    page = render_closing_record_html(result)
    assert "02/06/2024 20:00 (hora local)" in page  # the opening, in Baja California Sur
    json.dumps(result)  # the record is plain JSON


def _difusor(difusor_id: str, status: DifusorStatus) -> Difusor:
    return Difusor(
        difusor_id,
        difusor_id.title(),
        "1" * 12,
        "b",
        "D",
        "r",
        "e",
        f"https://{difusor_id}.mx",
        status=status,
        status_since=OPENING.isoformat() if status != "active" else "",
    )


def test_the_public_list_disables_a_suspended_difusors_link():
    files = difusores_list(
        [
            _difusor("uabcs", DifusorStatus.ACTIVE),
            _difusor("canal", DifusorStatus.SUSPENDED),
            _difusor("retirado", DifusorStatus.RETIRED),
        ],
        "IEEBCS",
        OPENING,
        TZ,
    )
    listing = json.loads(files[LIST_JSON][0])
    assert [(d["difusor"], d["estado"]) for d in listing["difusores"]] == [
        ("uabcs", "activo"),
        ("canal", "suspendido"),
    ]
    page = files[LIST_HTML][0].decode()
    assert 'href="https://uabcs.mx"' in page and "https://canal.mx" not in page
    assert "Transmisión interrumpida 02/06/2024 20:00" in page


def test_the_board_shows_each_difusors_last_check_and_the_latest_signed_snapshot():
    head = Head(
        7, "20240602_2300_PREP_DIP_LOC_BCS", "2024-06-03T06:00:00+00:00", "m", "a" * 64, "p"
    )
    checks = {
        "uabcs": CheckRecord(
            "uabcs",
            period="2024-06-03T06:00:00+00:00",
            outcome="ok",
            served_sequence=7,
            served_snapshot_id=head.snapshot_id,
            served_version=12,
            files_checked=1843,
            checked_at="2024-06-03T06:01:30+00:00",
        ),
        "canal": CheckRecord(
            "canal",
            period="2024-06-03T06:00:00+00:00",
            outcome="unreachable",
            detail="http://127.0.0.1:1/: Connection refused",
            checked_at="2024-06-03T06:01:31+00:00",
        ),
        "radio": CheckRecord(
            "radio",
            period="2024-06-03T06:00:00+00:00",
            outcome="stale",
            served_sequence=6,
            served_snapshot_id="20240602_2240_PREP_DIP_LOC_BCS",
            checked_at="2024-06-03T06:01:32+00:00",
        ),
    }
    files = difusores_list(
        [
            _difusor("uabcs", DifusorStatus.ACTIVE),
            _difusor("canal", DifusorStatus.SUSPENDED),
            _difusor("radio", DifusorStatus.ACTIVE),
            _difusor("nuevo", DifusorStatus.ACTIVE),
        ],
        "IEEBCS",
        OPENING,
        TZ,
        checks=checks,
        head=head,
    )
    board = json.loads(files[LIST_JSON][0])
    assert board["instituto"] == {
        "secuencia": 7,
        "corte": head.snapshot_id,
        "hora_de_corte": head.cut_time,
        "huella_manifiesto": "a" * 64,
    }
    last = {d["difusor"]: d["ultima_revision"] for d in board["difusores"]}
    assert last["uabcs"]["resultado"] == "verificado" and last["uabcs"]["es_el_ultimo_corte"]
    assert last["uabcs"]["corte_servido"] == head.snapshot_id
    assert last["uabcs"]["archivos_revisados"] == 1843
    assert last["canal"]["resultado"] == "inaccesible" and last["canal"]["corte_servido"] is None
    assert last["radio"]["resultado"] == "desactualizado"
    assert last["radio"]["es_el_ultimo_corte"] is False
    assert last["nuevo"] is None  # not checked yet
    # every difusor links to the institute's verifier, and the English detail stays out
    assert {d["verificar"] for d in board["difusores"]} >= {"verificador.html?difusor=uabcs"}
    page = files[LIST_HTML][0].decode()
    assert (
        "Connection refused" not in page
        and "Connection refused" not in files[LIST_JSON][0].decode()
    )
    latest = "secuencia 7, corte 20240602_2300_PREP_DIP_LOC_BCS, hora de corte 02/06/2024 23:00"
    assert latest in page
    row = re.search(r'<tr data-difusor="uabcs">.*?</tr>', page).group(0)
    assert 'data-resultado="verificado"' in row and "03/06/2024 00:01" not in row
    assert "02/06/2024 23:01 (hora local)" in row and "1,843 archivos revisados" in row
    radio = re.search(r'<tr data-difusor="radio">.*?</tr>', page).group(0)
    assert "No verificado" in radio and "(secuencia 6), no el último" in radio
    assert '<a href="verificador.html?difusor=radio">Verificar</a>' in radio
    assert "Sin revisión todavía" in page


def test_the_notice_tells_the_public_in_spanish_where_to_look_instead():
    difusor = _difusor("canal", DifusorStatus.SUSPENDED)
    files = suspension_notice(difusor, "IEEBCS", "https://prep.example/difusores.html", OPENING, TZ)
    page = files[NOTICE_PAGE][0].decode()
    assert 'lang="es"' in page and "fue interrumpida" in page
    assert 'href="https://prep.example/difusores.html"' in page


# --- the record from a night's ledger items, byte for byte ------------------------------

GOLDEN = Path(__file__).parent.parent / "fixtures" / "closing"


def closing_record_of_night(items_as_stored: Callable[[dict], dict] = lambda item: item) -> dict:
    """The closing record of ``tests.closing_night``, its items read as the ledger reads them."""

    def read(record_type, items):
        return [record_type.from_item(items_as_stored(item)) for item in items]

    return build_closing_record(
        election=night.ELECTION,
        time_zone=night.TIME_ZONE,
        window=night.WINDOW,
        record=night.RECORD,
        snapshots=read(SnapshotRecord, night.SNAPSHOTS),
        refused_reuploads=read(RejectionRecord, night.REUPLOADS),
        deliveries=read(DeliveryRecord, night.DELIVERIES),
        incidents=read(IncidentRecord, night.INCIDENTS),
        upstream_incidents=read(IncidentRecord, night.UPSTREAM_INCIDENTS),
        checks=read(CheckRecord, night.CHECKS),
        difusores=night.DIFUSORES,
        retained=night.RETAINED,
        generated_at=night.GENERATED_AT,
    )


@pytest.mark.parametrize("items_as_stored", [lambda item: item, plain], ids=["boto3", "plain"])
def test_the_closing_record_of_a_night_is_byte_for_byte_what_it_was(items_as_stored):
    # Given the items of a night (as boto3 returns them, or made plain as the ledger did)
    # When the closing record is built from the records read from them
    closing = closing_record_of_night(items_as_stored)
    # Then its JSON and its page are the ones made before the ledger had typed records
    assert closing_record_json(closing) == (GOLDEN / "registro-de-cierre.json").read_bytes()
    page = render_closing_record_html(closing).encode("utf-8")
    assert page == (GOLDEN / "registro-de-cierre.html").read_bytes()


def test_the_closing_record_of_an_empty_night_is_byte_for_byte_what_it_was():
    closing = build_closing_record(
        election=night.ELECTION,
        time_zone=night.TIME_ZONE,
        window=night.WINDOW,
        record=WindowRecord(),
        snapshots=[],
        deliveries=[],
        incidents=[],
        checks=[],
        difusores=[],
        retained=[],
        generated_at=night.GENERATED_AT,
    )
    assert closing_record_json(closing) == (GOLDEN / "registro-de-cierre-vacio.json").read_bytes()
    page = render_closing_record_html(closing).encode("utf-8")
    assert page == (GOLDEN / "registro-de-cierre-vacio.html").read_bytes()


def test_a_withdrawal_entry_keeps_the_package_it_publishes_again_under_retention():
    snapshots = [SnapshotRecord.from_item(item) for item in night.SNAPSHOTS]
    final = final_snapshot(snapshots, night.CLOSED_AT)
    # the withdrawal entry #4 is the final publication; it restores #2's package
    assert final is not None and final.snapshot_id == night.WITHDRAWAL
    assert retained_package(final, snapshots) == (f"incoming/{night.S2}.zip", "v2")
    # a snapshot from a package keeps its own; one that restores nothing keeps none
    second = next(s for s in snapshots if s.sequence == 2)
    assert retained_package(second, snapshots) == (f"incoming/{night.S2}.zip", "v2")
    assert retained_package(replace(final, restores_sequence=0), snapshots) is None
    assert retained_package(replace(second, object_version=None), snapshots) == (
        f"incoming/{night.S2}.zip",
        "",
    )


ENGLISH = re.compile(
    r"\b(suspended|active|retired|accepted|continuity|integrity|availability|unreachable|"
    r"altered|transmission|interrupted|repair|reinstate|withdrawal|release|not_an_archive|"
    r"already_accepted|timeout|repaired|alert)\b"
)


def test_the_closing_page_speaks_spanish():
    # The night's records are written in the ledger's English codes...
    closing = closing_record_of_night()
    assert "suspended" in closing_record_json(closing).decode()
    # ...and the page a person reads and signs says every one of them in Spanish
    page = render_closing_record_html(closing)
    text = re.sub(r"<[^>]+>|<code>.*?</code>", " ", page)
    assert ENGLISH.findall(text) == []
    for spanish in (
        "transmisión interrumpida",
        "dado de baja",
        "corte nuevo",
        "reparación",
        "retiro firmado",
        "liberación en la apertura",
        "integridad: archivos alterados",
        "no es un archivo comprimido",
    ):
        assert spanish in page
