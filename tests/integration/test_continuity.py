"""The continuity monitor against real web targets: each difusor's site served over HTTP
from its bucket in the emulator, checked by the monitor handler period after period."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from difusion.adapters.difusor_site import DifusorSites
from difusion.adapters.factory import client
from difusion.adapters.origin import OriginStore
from difusion.adapters.public_site import HttpSiteReader
from difusion.adapters.queues import DeliveryQueue
from difusion.cli import main
from difusion.manifest import Manifest
from difusion.notice import STATUS_PATH
from difusion.publication import MANIFEST_PATH, SIGNATURE_PATH
from difusion.services.continuity import ContinuityService, MonitorPolicy
from difusion.verification import verify_directory
from tests.integration.conftest import on_election_night_periods

pytestmark = pytest.mark.integration


def _outcomes(report: dict) -> dict[str, str]:
    return {c["difusor_id"]: c["outcome"] for c in report["checks"]}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _cli_files(pipeline, tmp_path: Path) -> list[str]:
    """The stack outputs and a drill config for the deployment, as an operator has them."""
    window = pipeline.deployment.window
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(pipeline.deployment.outputs()))
    config = tmp_path / "institute.json"
    config.write_text(
        json.dumps(
            {
                "account": "123456789012",
                "region": "us-east-1",
                "election_id": pipeline.deployment.election,
                "time_zone": pipeline.deployment.time_zone,
                "official": False,
                "window": {
                    "opening": window.opening.isoformat(),
                    "closing": window.closing.isoformat(),
                    "grace_minutes": 0,
                },
                "monitor": {"difusores_list_url": "https://prep.example.org/difusores.html"},
            }
        )
    )
    return ["--outputs", str(outputs), "--config", str(config)]


def test_a_faithful_site_passes_and_every_check_is_in_the_ledger(pipeline, packages):
    # Given a snapshot delivered to every difusor
    pipeline.process(packages[0])
    # When the monitor runs a period
    report = pipeline.run_monitor_period()
    # Then every site verifies over HTTP, and the ledger has one check per difusor
    assert _outcomes(report) == {d.difusor_id: "ok" for d in pipeline.deployment.difusores}
    checks = {c["difusor_id"]: c for c in pipeline.ledger.items("CHECK#")}
    assert set(checks) == {"diario-peninsular", "uabcs", "canal-10-los-cabos"}
    assert {c["outcome"] for c in checks.values()} == {"ok"}
    assert all(c["files_checked"] > 10 for c in checks.values())
    # and the upstream's check, under keys of its own: a snapshot seconds ago
    [upstream] = pipeline.ledger.items("UPSTREAM#CHECK#")
    assert upstream["outcome"] == "ok"
    assert pipeline.ledger.items("INCIDENT#") == []


def test_the_local_site_serves_index_pages_with_revalidation_headers(pipeline, packages):
    pipeline.process(packages[0])
    site = pipeline.sites["uabcs"]
    # "/" redirects to the live version (never cached), whose index page is served
    [version] = pipeline.versions_made("uabcs")
    with urllib.request.urlopen(site.url + "/", timeout=5) as response:
        assert response.url == f"{site.url}/v/{version}/"
        assert response.headers["Cache-Control"] == "no-cache"
        etag = response.headers["ETag"]
        assert response.read() == pipeline.site_objects("uabcs")["index.html"]
    request = urllib.request.Request(
        f"{site.url}/v/{version}/index.html", headers={"If-None-Match": etag}
    )
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request, timeout=5)
    assert not_modified.value.code == 304


def test_a_tampered_file_is_an_integrity_incident_repaired_at_once(pipeline, packages):
    pipeline.process(packages[0])
    difusor = pipeline.difusor("diario-peninsular")
    original = pipeline.site_objects(difusor.difusor_id)
    manifest = Manifest.from_bytes(original[MANIFEST_PATH])
    victim = next(f.path for f in manifest.files if f.path.endswith(".json"))
    # Given one file changed on the difusor's own bucket
    pipeline.tamper(difusor.difusor_id, victim, b'{"votos": 999999}')
    # When the monitor runs a period
    report = pipeline.run_monitor_period()
    # Then that difusor fails with the altered path named, an integrity incident is open,
    # and a repair of just that file is on its way
    check = next(c for c in report["checks"] if c["difusor_id"] == difusor.difusor_id)
    assert check["outcome"] == "altered" and check["altered_paths"] == [victim]
    assert {o for d, o in _outcomes(report).items() if d != difusor.difusor_id} == {"ok"}
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert (
        incident["incident_kind"] == "integrity" and incident["difusor_id"] == "diario-peninsular"
    )
    assert any("redelivery of 1 altered files" in a for a in incident["actions"])
    pipeline.settle()
    repair = [d for d in pipeline.ledger.items("DELIVERY#") if d.get("delivery_scope") == "repair"]
    assert len(repair) == 1 and repair[0]["status"] == "delivered"
    # a new version of the same cut, in the other slot (empty until now: copied in full,
    # the chain's history and the signed trio with it); the altered slot is not routed
    first = pipeline.versions_made(difusor.difusor_id)[0]
    assert (repair[0]["site_version"], repair[0]["slot"]) == (first + 1, "b")
    assert repair[0]["objects_copied"] == len(original)
    assert pipeline.site_objects(difusor.difusor_id) == original
    pointer = pipeline.pointer(difusor.difusor_id)
    assert pointer.previous is None and pointer.live.held.sequence == manifest.sequence
    # And the next period finds the site whole again and ends the incident
    assert _outcomes(pipeline.run_monitor_period())[difusor.difusor_id] == "ok"
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["ended_at"] and incident["periods_failed"] == 1


def test_a_site_serving_an_older_snapshot_is_stale(pipeline, packages):
    first = pipeline.process(packages[0])
    pipeline.process(packages[1])
    difusor = pipeline.difusor("uabcs")
    # Given the difusor's live version rolled back to the first snapshot's signed manifest
    for source, target in (
        (first["manifest_key"], MANIFEST_PATH),
        (first["manifest_key"] + ".minisig", SIGNATURE_PATH),
    ):
        body = pipeline.s3.get_object(Bucket=pipeline.deployment.origin_bucket, Key=source)
        pipeline.tamper(difusor.difusor_id, target, body["Body"].read())
    # When the monitor runs, Then the period fails as stale, naming both snapshots
    report = pipeline.run_monitor_period()
    check = next(c for c in report["checks"] if c["difusor_id"] == "uabcs")
    assert check["outcome"] == "stale"
    assert first["snapshot_id"] in check["detail"]
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["incident_kind"] == "continuity" and incident["cause"] == "stale"


def test_a_bad_signature_fails_the_period(pipeline, packages):
    pipeline.process(packages[0])
    difusor = pipeline.difusor("canal-10-los-cabos")
    objects = pipeline.site_objects(difusor.difusor_id)
    forged = objects[MANIFEST_PATH].replace(b'"sequence":1', b'"sequence":7')
    assert forged != objects[MANIFEST_PATH]
    pipeline.tamper(difusor.difusor_id, MANIFEST_PATH, forged)
    report = pipeline.run_monitor_period()
    assert _outcomes(report)[difusor.difusor_id] == "bad_signature"


def test_an_unreachable_site_is_suspended_after_three_periods_then_reinstated(
    pipeline, packages, tmp_path
):
    pipeline.process(packages[0])
    down = "canal-10-los-cabos"
    # Given the difusor's site goes down
    pipeline.sites[down].take_down()
    # When two periods fail, Then it is still active, with one open incident counting them
    for _ in range(2):
        assert _outcomes(pipeline.run_monitor_period())[down] == "unreachable"
    assert pipeline.difusor(down).status == "active"
    # When the third consecutive period fails, Then it is suspended
    report = pipeline.run_monitor_period()
    assert f"{down}: suspend" in report["actions"]
    suspended = pipeline.difusor(down)
    assert suspended.status == "suspended" and "3 consecutive" in suspended.status_reason
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["periods_failed"] == 3 and incident["cause"] == "unreachable"
    assert any("notice shown" in a for a in incident["actions"])
    # And its portal shows the notice in Spanish instead of results, unsigned
    objects = pipeline.site_objects(down)
    assert "transmisión del PREP en este sitio" in objects["index.html"].decode()
    assert MANIFEST_PATH not in objects and SIGNATURE_PATH not in objects
    assert json.loads(objects[STATUS_PATH])["estado"] == "suspendido"
    # And the institute's public list disables its link
    portal = pipeline.sites["institute"].url
    listing = json.loads(_get(portal + "/difusores.json"))
    states = {d["difusor"]: d["estado"] for d in listing["difusores"]}
    assert states == {"diario-peninsular": "activo", "uabcs": "activo", down: "suspendido"}
    page = _get(portal + "/difusores.html").decode()
    assert f'href="{pipeline.sites[down].url}"' not in page
    assert f'href="{pipeline.sites["uabcs"].url}"' in page
    # And the board shows each one's last check beside the institute's latest signed cut
    head = pipeline.ledger.head()
    assert listing["instituto"]["secuencia"] == head.sequence
    assert listing["instituto"]["huella_manifiesto"] == head.manifest_sha256
    last = {d["difusor"]: d["ultima_revision"] for d in listing["difusores"]}
    assert last[down]["resultado"] == "inaccesible" and last[down]["corte_servido"] is None
    assert last["uabcs"]["resultado"] == "verificado"
    assert (
        last["uabcs"]["corte_servido"] == head.snapshot_id and last["uabcs"]["es_el_ultimo_corte"]
    )
    assert re.search(rf'<tr data-difusor="{down}">.*?No verificado.*?el sitio no respondió', page)
    # beside it, the institute's verifier with the key pinned in it, and the key
    verifier = _get(portal + "/verificador.html").decode()
    assert pipeline.secret_key.public_key.base64 in verifier
    assert _get(portal + "/prep.pub").decode() == pipeline.secret_key.public_key.to_file()
    # And a new snapshot is not delivered to it, and it is no longer checked
    pipeline.process(packages[1])
    assert pipeline.ledger.published(down).snapshot_id != pipeline.ledger.head().snapshot_id
    assert down not in _outcomes(pipeline.run_monitor_period())

    # When the site is back and UCSI reinstates it
    pipeline.sites[down].bring_up()
    reinstate = ["difusor", "reinstate", down, "--reason", "sitio restablecido"]
    code = main([*reinstate, *_cli_files(pipeline, tmp_path)])
    assert code == 0
    pipeline.settle()
    # Then it receives the current snapshot in full, and its copy verifies exactly
    assert pipeline.difusor(down).status == "active"
    [full] = [d for d in pipeline.ledger.items("DELIVERY#") if d.get("delivery_scope") == "full"]
    assert (
        full["status"] == "delivered" and full["snapshot_id"] == pipeline.ledger.head().snapshot_id
    )
    pipeline.download_site(down, tmp_path / "site")
    verdict = verify_directory(tmp_path / "site", pipeline.secret_key.public_key)
    assert verdict.ok, verdict.problems
    assert verdict.snapshot_id == pipeline.ledger.head().snapshot_id
    assert STATUS_PATH not in pipeline.site_objects(down)
    # And the incident is closed, and the next period checks it again and finds it whole
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["ended_at"] and "reinstated" in incident["resolution"]
    assert _outcomes(pipeline.run_monitor_period())[down] == "ok"
    listing = json.loads(_get(portal + "/difusores.json"))
    assert {d["estado"] for d in listing["difusores"]} == {"activo"}
    # the board refreshed with the period: its check verified the current cut again
    [back] = [d for d in listing["difusores"] if d["difusor"] == down]
    assert back["ultima_revision"]["resultado"] == "verificado"
    assert back["ultima_revision"]["corte_servido"] == pipeline.ledger.head().snapshot_id
    assert listing["instituto"]["corte"] == pipeline.ledger.head().snapshot_id


def _service(pipeline, clock, policy: MonitorPolicy | None = None) -> ContinuityService:
    """The monitor's service on the deployment, with a clock the test controls."""
    deployment = pipeline.deployment
    return ContinuityService(
        OriginStore(client("s3"), deployment.origin_bucket),
        pipeline.ledger,
        pipeline.registry,
        DifusorSites(client("sts"), "test", 4),
        HttpSiteReader(3),
        DeliveryQueue(client("sqs"), deployment.delivery_queue_url),
        window=deployment.window,
        policy=policy or MonitorPolicy(period=timedelta(minutes=15)),
        clock=clock,
    )


def test_a_period_that_runs_twice_acts_once(pipeline, packages):
    pipeline.process(packages[0])
    pipeline.sites["uabcs"].take_down()
    # Given a service whose clock stands still: every run falls in the same period
    now = datetime.now(UTC)
    service = _service(pipeline, lambda: now)
    first = service.run_period()
    # When the schedule invokes the same period again
    second = service.run_period()
    # Then the failure is counted once and nothing is done twice
    assert first.period == second.period
    assert first.actions == ["uabcs: open_incident"] and second.actions == []
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert incident["periods_failed"] == 1
    assert pipeline.ledger.monitor_state("uabcs").consecutive_failures == 1


@pytest.fixture
def election_night(_session_pipeline):
    """A pipeline on a controlled clock with election night's monitor period (15 minutes)
    and stall limit (20), the clock at the start of a period (it provisions anew)."""
    yield from on_election_night_periods(_session_pipeline, {"UPSTREAM_STALL_SECONDS": "1200"})


def test_an_upstream_silent_for_longer_than_the_limit_is_an_incident_until_a_cut_arrives(
    election_night, packages
):
    # Given a snapshot accepted at the start of a period, on a clock the test moves for the
    # functions and the monitor's schedule alike
    pipeline, clock = election_night, election_night.clock
    start = clock.now()
    pipeline.process(packages[0])
    assert pipeline.run_monitor_period()["upstream_silence_seconds"] == 0
    # Within the limit of the last snapshot, at the next period: no incident
    report = pipeline.run_monitor_period()
    assert clock.now() == start + timedelta(minutes=15)
    assert report["upstream_silence_seconds"] == 15 * 60
    assert pipeline.ledger.items("INCIDENT#") == []
    # Past the limit without a new snapshot while the window is open: an incident
    report = pipeline.run_monitor_period()
    assert report["upstream_silence_seconds"] == 30 * 60
    assert "upstream: open_incident" in report["actions"]
    [incident] = pipeline.ledger.items("UPSTREAM#INCIDENT#")
    assert incident["incident_kind"] == "upstream_stall"
    assert pipeline.ledger.items("INCIDENT#") == []  # no difusor's
    # A new snapshot ends it at the next period
    clock.advance(timedelta(minutes=1))
    pipeline.process(packages[1])
    report = pipeline.run_monitor_period()
    assert clock.now() == start + timedelta(minutes=45)
    assert report["upstream_silence_seconds"] == 14 * 60
    assert "upstream: close_incident" in report["actions"]
    [incident] = pipeline.ledger.items("UPSTREAM#INCIDENT#")
    assert incident["ended_at"] and incident["periods_failed"] == 1


def test_a_suspension_says_so_when_the_difusors_bucket_no_longer_takes_the_notice(
    pipeline, packages
):
    pipeline.process(packages[0])
    gone = pipeline.difusor("uabcs")
    # Given a difusor whose site is down and whose bucket is gone
    pipeline.sites["uabcs"].take_down()
    s3 = pipeline.difusor_s3("uabcs")
    versions = s3.list_object_versions(Bucket=gone.bucket)  # the site bucket is versioned
    for item in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        s3.delete_object(Bucket=gone.bucket, Key=item["Key"], VersionId=item["VersionId"])
    s3.delete_bucket(Bucket=gone.bucket)
    # When three periods fail
    for _ in range(3):
        pipeline.run_monitor_period()
    # Then it is suspended all the same, and the incident says the notice could not be shown
    assert pipeline.difusor("uabcs").status == "suspended"
    [incident] = pipeline.ledger.items("INCIDENT#")
    assert any("notice not shown" in a and "NoSuchBucket" in a for a in incident["actions"])
