from __future__ import annotations

import pytest

from difusion.settings import IngestSettings, ReplicateSettings, SettingsError

BASE = {
    "ELECTION_ID": "DIP_LOC_BCS",
    "ORIGIN_BUCKET": "origin",
    "LEDGER_TABLE": "ledger",
    "IDEMPOTENCY_TABLE": "idem",
    "SIGN_QUEUE_URL": "https://sqs/sign.fifo",
    "REGISTRY_TABLE": "registry",
}


def test_settings_are_typed_with_defaults():
    settings = IngestSettings.from_env({**BASE, "ARCHIVE_MAX_ENTRIES": "10"})
    assert settings.time_zone == "America/Mazatlan"
    assert settings.limits.max_entries == 10
    assert ReplicateSettings.from_env(BASE).max_attempts == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ORIGIN_BUCKET": ""}, "ORIGIN_BUCKET is required"),
        ({"ELECTION_TIME_ZONE": "Mars/Olympus"}, "not a time zone"),
        ({"ARCHIVE_MAX_ENTRIES": "many"}, "must be an integer"),
        ({"ARCHIVE_MAX_ENTRIES": "0"}, "at least 1"),
    ],
)
def test_bad_configuration_is_named(override, message):
    with pytest.raises(SettingsError, match=message):
        IngestSettings.from_env({**BASE, **override})
