from __future__ import annotations

from datetime import timedelta

import pytest

from difusion.settings import IngestSettings, ReplicateSettings, SettingsError

BASE = {
    "ELECTION_ID": "DIP_LOC_BCS",
    "ORIGIN_BUCKET": "origin",
    "LEDGER_TABLE": "ledger",
    "IDEMPOTENCY_TABLE": "idem",
    "SIGN_QUEUE_URL": "https://sqs/sign.fifo",
    "REGISTRY_TABLE": "registry",
    "WINDOW_OPENING": "2024-06-02T20:00:00-07:00",
    "WINDOW_CLOSING": "2024-06-03T20:00:00-07:00",
}


def test_settings_are_typed_with_defaults():
    settings = IngestSettings.from_env({**BASE, "ARCHIVE_MAX_ENTRIES": "10"})
    assert settings.time_zone == "America/Mazatlan"
    assert settings.limits.max_entries == 10
    replicate = ReplicateSettings.from_env(BASE)
    assert replicate.max_attempts == 5
    assert replicate.window.grace.total_seconds() == 900
    assert replicate.window.closing - replicate.window.opening == timedelta(hours=24)


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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"WINDOW_OPENING": ""}, "WINDOW_OPENING is required"),
        ({"WINDOW_OPENING": "2024-06-02T20:00"}, "must carry its UTC offset"),
        ({"WINDOW_CLOSING": "mañana"}, "ISO date-time"),
        ({"WINDOW_CLOSING": "2024-06-02T19:00:00-07:00"}, "close after it opens"),
    ],
)
def test_a_bad_window_is_named(override, message):
    with pytest.raises(SettingsError, match=message):
        ReplicateSettings.from_env({**BASE, **override})


def test_a_pinned_key_is_parsed_once_and_a_bad_one_is_named():
    from difusion.signing import SecretKey

    key = SecretKey.generate().public_key
    pinned = ReplicateSettings.from_env({**BASE, "PREP_PUBLIC_KEY": key.to_file()})
    assert pinned.public_key == key
    assert ReplicateSettings.from_env(BASE).public_key is None
    with pytest.raises(SettingsError, match="PREP_PUBLIC_KEY"):
        ReplicateSettings.from_env({**BASE, "PREP_PUBLIC_KEY": "RWQnot-a-key"})
