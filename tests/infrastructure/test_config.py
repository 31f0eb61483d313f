"""Deployment configuration: typed, validated at synth, errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from difusion.settings import SettingsError
from stacks.config import ConfigError, DifusorConfig, InstituteConfig

ROOT = Path(__file__).resolve().parents[2]
INSTITUTE = json.loads((ROOT / "config" / "institute.json").read_text())
DIFUSOR = json.loads((ROOT / "config" / "difusor.json").read_text())
pytestmark = pytest.mark.infrastructure


def institute(**changes):
    raw = copy.deepcopy(INSTITUTE)
    for key, value in changes.items():
        raw[key] = value
    return raw


def test_the_example_configuration_is_valid():
    config = InstituteConfig.from_json(INSTITUTE)
    assert config.window.opening.utcoffset().total_seconds() == -7 * 3600
    assert config.publisher_role_arn == (
        "arn:aws:iam::111122223333:role/difusion-publisher-dip-loc-bcs"
    )
    assert config.difusores[0].role_arn.endswith(":role/difusion-delivery-dip-loc-bcs")
    difusor = DifusorConfig.from_json(DIFUSOR)
    assert difusor.publisher_role_arn == config.publisher_role_arn
    assert difusor.monitor_role_arn == config.monitor_role_arn


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"account": "1234"}, "institute.account must be a 12-digit AWS account id"),
        ({"region": "mars"}, "institute.region"),
        ({"election_id": "dip-loc"}, "institute.election_id"),
        ({"time_zone": "America/Atlantis"}, "not an IANA time zone"),
        (
            {"window": {"opening": "2024-06-02T21:00", "closing": "2024-06-03T20:00"}},
            "outside 18:00–20:00",
        ),
        (
            {"window": {"opening": "2024-06-02T17:59", "closing": "2024-06-03T17:00"}},
            "outside 18:00–20:00",
        ),
        (
            {"window": {"opening": "2024-06-02T18:00", "closing": "2024-06-03T18:01"}},
            "longer than 24 hours",
        ),
        (
            {"window": {"opening": "2024-06-02T20:00", "closing": "2024-06-02T19:00"}},
            "closing must be after",
        ),
        ({"window": {"opening": "anoche", "closing": "2024-06-02T19:00"}}, "ISO date-time"),
        (
            {
                "difusores": [
                    {"id": "a", "account": "444455556666"},
                    {"id": "a", "account": "777788889999"},
                ]
            },
            "appears twice",
        ),
        ({"difusores": [{"id": "Diario!", "account": "444455556666"}]}, "difusores[0].id"),
        ({"delivery_max_attempts": 0}, "delivery_max_attempts"),
        ({"retire_wait_seconds": -1}, "retire_wait_seconds must be 0..300"),
        ({"retire_wait_seconds": 301}, "retire_wait_seconds must be 0..300"),
        ({"retire_wait_seconds": "60"}, "retire_wait_seconds"),
        ({"archive_limits": {"max_bombs": 3}}, "archive_limits.max_bombs is not a limit"),
    ],
)
def test_bad_institute_values_are_refused_at_synth_with_the_field_named(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        InstituteConfig.from_json(institute(**changes))


def test_the_opening_may_be_any_time_from_18_to_20():
    for opening in ("2024-06-02T18:00", "2024-06-02T19:59", "2024-06-02T20:00"):
        window = {"opening": opening, "closing": "2024-06-03T17:00"}
        InstituteConfig.from_json(institute(window=window))


def test_the_difusor_opens_its_site_to_the_portal_the_institute_publishes_its_list_on():
    from urllib.parse import urlsplit

    listed = urlsplit(InstituteConfig.from_json(INSTITUTE).monitor.difusores_list_url)
    assert DifusorConfig.from_json(DIFUSOR).portal_origin == f"{listed.scheme}://{listed.netloc}"


def test_a_drill_is_free_of_the_official_window_rules():
    drill = institute(
        official=False,
        election_id="SIMULACRO_1",
        window={"opening": "2024-05-19T10:00", "closing": "2024-05-21T10:00"},
    )
    config = InstituteConfig.from_json(drill)
    assert not config.official


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"external_id": "short"}, "difusor.external_id"),
        ({"domain_name": "prep.example.mx"}, "go together"),
        (
            {
                "domain_name": "prep.example.mx",
                "certificate_arn": "arn:aws:acm:us-west-2:777788889999:certificate/x",
            },
            "us-east-1",
        ),
        ({"rate_limit_per_5_minutes": 10}, "rate_limit_per_5_minutes"),
        ({"institute_account": "x"}, "difusor.institute_account"),
        # The site, its CDN, WAF and Shield live in us-east-1: another region is an error,
        # not silently ignored.
        ({"region": "us-west-2"}, "difusor.region must be us-east-1"),
        # Difusores no longer read the origin; a stale config says what to do.
        ({"origin_bucket": "difusion-origin-x"}, "origin_bucket is no longer used"),
        ({"election_id": "E" * 41}, "at most 40 characters"),
        ({"election_id": None}, "difusor.election_id is required"),
        # Only the institute's portal may read the site cross-origin: an origin, not a page
        ({"portal_origin": None}, "difusor.portal_origin is required"),
        ({"portal_origin": "https://prep.ieebcs.org.mx/difusores.html"}, "no path"),
        ({"portal_origin": "http://prep.ieebcs.org.mx"}, "difusor.portal_origin"),
        ({"portal_origin": "*"}, "difusor.portal_origin"),
    ],
)
def test_bad_difusor_values_are_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        DifusorConfig.from_json({**DIFUSOR, **changes})


def test_a_missing_file_is_named(tmp_path):
    from stacks.config import load_json

    with pytest.raises(ConfigError, match="does not exist"):
        load_json(tmp_path / "nope.json")


def test_a_pinned_public_key_must_be_a_minisign_key_string():
    from stacks.config import ConfigError, InstituteConfig, load_json

    raw = load_json(ROOT / "config" / "institute.json")
    assert InstituteConfig.from_json(raw).public_key == raw["public_key"]
    with pytest.raises(ConfigError, match="public_key must be a minisign public key"):
        InstituteConfig.from_json({**raw, "public_key": "not a key"})
    assert InstituteConfig.from_json({**raw, "public_key": ""}).public_key is None


def test_a_difusor_synthesizes_its_stack_without_the_institutes_config(tmp_path):
    """A difusor deploys first, in its own account, with only its own file."""
    import aws_cdk as cdk

    from app import build_app

    # Given an app asked for the difusor's stack only, and no institute config anywhere
    app = cdk.App(
        outdir=str(tmp_path / "cdk.out"),
        context={"stacks": "difusor", "institute_config": str(tmp_path / "missing.json")},
    )
    # When it is built
    institute, difusor = build_app(app)
    app.synth()
    # Then only the difusor's stack exists, named for its election, in us-east-1
    assert institute is None
    assert difusor is not None and difusor.stack_name == "DifusionDifusor-dip-loc-bcs"
    assert difusor.region == "us-east-1"


def test_an_unknown_stack_selection_is_refused():
    import aws_cdk as cdk

    from app import build_app

    with pytest.raises(ConfigError, match="-c stacks= takes institute and/or difusor"):
        build_app(cdk.App(context={"stacks": "everything"}))


def test_the_cli_runs_the_monitor_with_the_settings_the_stack_gives_it(tmp_path):
    from difusion.cli import _monitor_settings
    from difusion.signing import PublicKey, SecretKey

    key = SecretKey.generate().public_key.to_file().splitlines()[-1]
    config_path = tmp_path / "institute.json"
    config_path.write_text(json.dumps(institute(public_key=key)))
    outputs = tmp_path / "outputs.json"
    names = ("OriginBucketName", "LedgerTableName", "RegistryTableName")
    outputs.write_text(
        json.dumps(
            {
                "Stack": {
                    **{n: f"x-{n.lower()}" for n in names},
                    "IdempotencyTableName": "i",
                    "DeliveryQueueUrl": "https://sqs.us-east-1.amazonaws.com/1/q.fifo",
                }
            }
        )
    )
    config = InstituteConfig.from_json(institute(public_key=key))

    class Args:
        pass

    args = Args()
    args.config, args.outputs = config_path, outputs
    settings = _monitor_settings(args)
    # The pinned key: the CLI's monitor checks sites against it, as the deployed one does
    assert settings.public_key == PublicKey.from_text(key)
    assert config.environment("monitor")["PREP_PUBLIC_KEY"] == key
    assert settings.window.opening == config.window.opening
    assert settings.max_attempts == config.delivery_max_attempts
    assert "PREP_PUBLIC_KEY" not in config.environment("ingest")


def test_replicate_is_told_how_long_to_keep_a_retired_version_out_of_use():
    from difusion.settings import ReplicateSettings

    default = InstituteConfig.from_json(institute())
    assert default.environment("replicate")["RETIRE_WAIT_SECONDS"] == "60"
    assert "RETIRE_WAIT_SECONDS" not in default.environment("monitor")
    longer = InstituteConfig.from_json(institute(retire_wait_seconds=180))
    env = {
        **longer.environment("replicate"),
        "ORIGIN_BUCKET": "o",
        "LEDGER_TABLE": "l",
        "IDEMPOTENCY_TABLE": "i",
        "REGISTRY_TABLE": "r",
    }
    assert ReplicateSettings.from_env(env).retire_wait_seconds == 180
    with pytest.raises(SettingsError, match="RETIRE_WAIT_SECONDS must be at most 300"):
        ReplicateSettings.from_env({**env, "RETIRE_WAIT_SECONDS": "900"})


def test_the_embedded_default_gives_its_functions_every_setting_the_config_gives_each():
    from difusion.settings import policy_environment
    from difusion.signing import SecretKey

    key = SecretKey.generate().public_key.base64
    config = InstituteConfig.from_json(institute(public_key=key))
    everything = policy_environment(
        None,
        election_id=config.election_id,
        time_zone=config.time_zone,
        opening=config.window.opening,
        closing=config.window.closing,
        grace_seconds=config.grace_seconds,
        max_attempts=config.delivery_max_attempts,
        public_key=config.public_key,
        retire_wait_seconds=config.retire_wait_seconds,
    )
    for function in ("ingest", "sign", "replicate", "monitor"):
        policy = {k: v for k, v in config.environment(function).items() if k in everything}
        assert policy.items() <= everything.items(), function
    assert everything["PREP_PUBLIC_KEY"] == key
    assert set(config.environment("ingest")) < set(everything)
