"""A snapshot that should not have been accepted, withdrawn: a signed entry of the chain
says so, every difusor moves forward to the newest valid snapshot, and a verifier sees it."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from difusion.cli import main
from difusion.manifest import Manifest
from difusion.publication import MANIFEST_PATH, VERIFY_PAGE_PATH
from tests.integration.test_continuity import _cli_files
from tests.integration.test_verify import open_page

pytestmark = pytest.mark.integration


def _content(objects: dict[str, bytes]) -> dict[str, bytes]:
    """What a snapshot publishes, without the chain's own files (manifest, history)."""
    listed = Manifest.from_bytes(objects[MANIFEST_PATH]).files_by_path()
    return {path: body for path, body in objects.items() if path in listed}


def test_a_withdrawn_snapshot_is_replaced_everywhere_by_the_newest_valid_one(
    pipeline,
    packages,
    series,
    tmp_path,
    capsys,
    chromium,
):
    cli = _cli_files(pipeline, tmp_path)
    pipeline.process(packages[0])
    first_site = {
        d.difusor_id: pipeline.site_objects(d.difusor_id) for d in pipeline.deployment.difusores
    }
    bad = pipeline.process(packages[1])
    assert bad["status"] == "accepted" and bad["sequence"] == 2
    # When UCSI withdraws the second cut
    code = main(
        [
            "snapshot",
            "withdraw",
            bad["snapshot_id"],
            "--reason",
            "corte con error de captura",
            "--wait",
            "0",
            *cli,
        ]
    )
    assert code == 0, capsys.readouterr()
    pipeline.settle()
    # Then the chain has a third, signed entry that says so and restores the first cut
    ledger = pipeline.ledger
    head = ledger.head()
    assert head.sequence == 3 and head.snapshot_id == "retiro-000003"
    withdrawn = ledger.snapshot(bad["snapshot_id"])
    assert withdrawn["withdrawn_by_sequence"] == 3
    assert withdrawn["withdrawal_reason"] == "corte con error de captura"
    for difusor in pipeline.deployment.difusores:
        # every difusor moved forward to it, publishing the first cut's files again
        assert ledger.published(difusor.difusor_id).sequence == 3
        objects = pipeline.site_objects(difusor.difusor_id)
        assert _content(objects) == _content(first_site[difusor.difusor_id])
        manifest = Manifest.from_bytes(objects[MANIFEST_PATH])
        assert manifest.withdrawal.snapshot_id == bad["snapshot_id"]
        assert manifest.withdrawal.restores == 1
    # And a citizen's verifier replays the whole chain, the withdrawal included
    key = tmp_path / "prep.pub"
    key.write_text(pipeline.secret_key.public_key.to_file())
    capsys.readouterr()
    site = pipeline.sites["uabcs"].url
    assert main(["verify", site, "--public-key", str(key), "--history", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["history_checked"] == 3
    assert [(w["entry"], w["sequence"], w["restores"]) for w in result["withdrawals"]] == [
        (3, 2, 1)
    ]
    assert main(["verify", site, "--public-key", str(key), "--history"]) == 0
    assert "withdrawn: #2" in capsys.readouterr().out
    # and the verification page says so, in Spanish, from the signed manifest
    state, dom = open_page(
        chromium, f"{site}/{VERIFY_PAGE_PATH}", "retiro.png", tmp_path / "browser"
    )
    assert state == "verificado", dom[-1500:]
    assert f"El Instituto retiró el corte {bad['snapshot_id']} (secuencia 2)" in dom
    assert "se publica de nuevo el corte de la secuencia 1" in dom
    # Asking again changes nothing
    assert (
        main(
            [
                "snapshot",
                "withdraw",
                bad["snapshot_id"],
                "--reason",
                "otra vez",
                "--wait",
                "0",
                *cli,
            ]
        )
        == 0
    )
    assert "already withdrawn by the signed entry #3" in capsys.readouterr().out
    # The withdrawn cut cannot come back under its name; the next cut is published after it
    again = pipeline.process(packages[1])
    rejections = ledger.items(f"REJECTION#{bad['snapshot_id']}")
    assert (
        again["status"] == "accepted"
        and rejections
        and "withdrawn" in rejections[0]["rejection_reason"]
    )
    assert pipeline.process(packages[2])["sequence"] == 4
    assert {ledger.published(d.difusor_id).sequence for d in pipeline.deployment.difusores} == {4}


def test_only_an_accepted_snapshot_is_withdrawn_and_a_withdrawal_needs_a_reason(
    pipeline, packages, tmp_path, capsys
):
    cli = _cli_files(pipeline, tmp_path)
    accepted = pipeline.process(packages[0])
    assert main(["snapshot", "withdraw", "NO_SUCH_CUT", "--reason", "x", "--wait", "0", *cli]) == 2
    assert "not an accepted snapshot" in capsys.readouterr().err
    assert (
        main(
            ["snapshot", "withdraw", accepted["snapshot_id"], "--reason", " ", "--wait", "0", *cli]
        )
        == 2
    )
    assert "needs a reason" in capsys.readouterr().err
    assert pipeline.ledger.head().sequence == 1  # nothing was signed


def test_withdrawing_the_only_snapshot_leaves_just_the_institutes_page(
    pipeline, packages, tmp_path, capsys
):
    cli = _cli_files(pipeline, tmp_path)
    only = pipeline.process(packages[0])
    withdraw = ["snapshot", "withdraw", only["snapshot_id"], "--reason", "no debió publicarse"]
    # the command waits for the signed entry while the functions run
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(main, [*withdraw, "--wait", "60", *cli])
        while not waiting.done():
            pipeline.settle()
        assert waiting.result() == 0
    assert f"{only['snapshot_id']}: withdrawn by the signed entry #2" in capsys.readouterr().out
    pipeline.settle()
    objects = pipeline.site_objects("uabcs")
    manifest = Manifest.from_bytes(objects[MANIFEST_PATH])
    assert [f.path for f in manifest.files] == [VERIFY_PAGE_PATH]
    assert manifest.withdrawal.restores is None
    assert _content(objects).keys() == {VERIFY_PAGE_PATH}
    # and any real cut afterwards is newer than "no cut"
    assert pipeline.process(packages[1])["status"] == "accepted"
