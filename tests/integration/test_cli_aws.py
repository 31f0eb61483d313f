"""The operators' AWS commands, against the emulator (standard AWS configuration)."""

from __future__ import annotations

import json

import pytest

from difusion.adapters.sessions import new_session
from difusion.cli import main
from difusion.signing import SecretKey

pytestmark = pytest.mark.integration


def test_submit_uploads_to_incoming_and_the_pipeline_takes_it_from_there(
    pipeline, packages, capsys
):
    assert main(["submit", str(packages[0]), "--bucket", pipeline.deployment.origin_bucket]) == 0
    pipeline.settle()
    assert pipeline.ledger.head().snapshot_id == packages[0].name.removesuffix(".zip")
    assert "uploaded s3://" in capsys.readouterr().out


def test_submit_refuses_a_badly_named_package_before_uploading(pipeline, tmp_path, capsys):
    bad = tmp_path / "resultados.zip"
    bad.write_bytes(b"PK")
    assert main(["submit", str(bad), "--bucket", pipeline.deployment.origin_bucket]) == 3
    assert "YYYYMMDD_HHMM_PREP" in capsys.readouterr().err
    listing = pipeline.s3.list_objects_v2(Bucket=pipeline.deployment.origin_bucket)
    assert listing.get("KeyCount", 0) == 0


def test_ledger_shows_snapshots_deliveries_and_rejections(pipeline, packages, tmp_path, capsys):
    pipeline.process(packages[0])
    bad = tmp_path / "20240602_2020_PREP_DIP_LOC_BCS.zip"
    bad.write_bytes(b"garbage")
    pipeline.process(bad)
    capsys.readouterr()
    args = [
        "ledger",
        "--table",
        pipeline.deployment.ledger_table,
        "--election",
        pipeline.deployment.election,
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "accepted" in text and "delivered" in text
    assert "not_an_archive" in text
    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["deliveries"]) == 3


KVS_ARN = "arn:aws:cloudfront::555555555555:key-value-store/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def test_register_from_stack_outputs_adds_a_difusor(pipeline, tmp_path, capsys):
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "DifusorStack-nuevo": {
                    "DifusorId": "radio-nuevo",
                    "DifusorName": "Radio Nuevo",
                    "AccountId": "555555555555",
                    "SiteBucketName": "prep-radio-nuevo",
                    "DistributionId": "E2NUEVO",
                    "KeyValueStoreArn": KVS_ARN,
                    "DeliveryRoleArn": "arn:aws:iam::555555555555:role/difusion-delivery",
                    "ExternalId": "f" * 32,
                    "PublicUrl": "https://prep.radionuevo.mx",
                }
            }
        )
    )
    table = pipeline.deployment.registry_table
    assert main(["difusor", "register", "--table", table, "--from-outputs", str(outputs)]) == 0
    registered = pipeline.registry.get("radio-nuevo")
    assert registered.account_id == "555555555555"
    assert registered.public_url == "https://prep.radionuevo.mx"
    capsys.readouterr()
    assert main(["difusor", "list", "--table", table]) == 0
    assert "radio-nuevo" in capsys.readouterr().out


def test_register_names_what_is_missing(pipeline, capsys):
    table = pipeline.deployment.registry_table
    assert main(["difusor", "register", "--table", table, "--id", "x"]) == 2
    assert "--bucket" in capsys.readouterr().err


def test_keys_store_puts_the_secret_key_where_the_sign_function_reads_it(pipeline, tmp_path):
    key = SecretKey.generate()
    (tmp_path / "prep.key").write_text(key.to_file())
    assert main(["keys", "store", str(tmp_path / "prep.key"), "--secret-id", "otra/llave"]) == 0
    stored = (
        new_session()
        .client("secretsmanager")
        .get_secret_value(SecretId="otra/llave")["SecretString"]
    )
    assert SecretKey.from_file(stored) == key
