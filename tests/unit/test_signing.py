"""Signatures in minisign's formats, checked against the stock minisign tool."""

from __future__ import annotations

import subprocess

import pytest

from difusion.errors import KeyFormatError, SignatureInvalid
from difusion.signing import PublicKey, SecretKey, sign, verify
from tests.minisign_tool import minisign, minisign_verify

MESSAGE = b'{"format":"difusion-manifest/1","snapshot":{"id":"20240602_2120_PREP_DIP_LOC_BCS"}}'
COMMENT = "timestamp:1717388400\tfile:manifest.json\tsnapshot:20240602_2120_PREP_DIP_LOC_BCS"


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.generate()


def test_a_signature_verifies_and_returns_its_trusted_comment(key):
    signature = sign(MESSAGE, key, trusted_comment=COMMENT, untrusted_comment="prep")
    assert verify(MESSAGE, signature, key.public_key) == COMMENT


def test_the_stock_minisign_tool_verifies_our_signature(key, tmp_path):
    # Given a manifest signed by us and our public key file
    (tmp_path / "manifest.json").write_bytes(MESSAGE)
    (tmp_path / "manifest.json.minisig").write_text(
        sign(MESSAGE, key, trusted_comment=COMMENT, untrusted_comment="prep")
    )
    (tmp_path / "prep.pub").write_text(key.public_key.to_file())
    # When minisign checks it
    result = minisign_verify(
        tmp_path / "manifest.json", tmp_path / "manifest.json.minisig", tmp_path / "prep.pub"
    )
    # Then both signatures verify and it shows our trusted comment
    assert result.returncode == 0, result.stderr
    assert "Signature and comment signature verified" in result.stdout
    assert f"Trusted comment: {COMMENT}" in result.stdout


def test_the_stock_minisign_tool_rejects_an_altered_manifest(key, tmp_path):
    (tmp_path / "manifest.json").write_bytes(MESSAGE.replace(b"2120", b"2140"))
    (tmp_path / "manifest.json.minisig").write_text(
        sign(MESSAGE, key, trusted_comment=COMMENT, untrusted_comment="prep")
    )
    (tmp_path / "prep.pub").write_text(key.public_key.to_file())
    result = minisign_verify(
        tmp_path / "manifest.json", tmp_path / "manifest.json.minisig", tmp_path / "prep.pub"
    )
    assert result.returncode != 0


def test_minisign_signs_with_our_secret_key_file_and_we_verify_it(key, tmp_path):
    # Our secret key file is minisign's format: the tool itself can sign with it.
    (tmp_path / "prep.key").write_text(key.to_file())
    (tmp_path / "manifest.json").write_bytes(MESSAGE)
    subprocess.run(
        [
            minisign(),
            "-S",
            "-s",
            str(tmp_path / "prep.key"),
            "-m",
            str(tmp_path / "manifest.json"),
            "-t",
            "signed by minisign",
        ],
        check=True,
        capture_output=True,
        input=b"",
    )
    signature = (tmp_path / "manifest.json.minisig").read_text()
    assert verify(MESSAGE, signature, key.public_key) == "signed by minisign"


def test_we_read_public_keys_minisign_generated(tmp_path):
    subprocess.run(
        [minisign(), "-G", "-W", "-p", str(tmp_path / "k.pub"), "-s", str(tmp_path / "k.key")],
        check=True,
        capture_output=True,
    )
    (tmp_path / "m").write_bytes(MESSAGE)
    subprocess.run(
        [minisign(), "-S", "-s", str(tmp_path / "k.key"), "-m", str(tmp_path / "m")],
        check=True,
        capture_output=True,
    )
    public = PublicKey.from_text((tmp_path / "k.pub").read_text())
    secret = SecretKey.from_file((tmp_path / "k.key").read_text())
    assert secret.public_key == public
    verify(MESSAGE, (tmp_path / "m.minisig").read_text(), public)


def test_a_tampered_trusted_comment_is_detected(key):
    signature = sign(MESSAGE, key, trusted_comment=COMMENT, untrusted_comment="prep")
    forged = signature.replace("snapshot:20240602_2120", "snapshot:20240602_2140")
    with pytest.raises(SignatureInvalid, match="trusted comment"):
        verify(MESSAGE, forged, key.public_key)


def test_a_signature_by_another_key_is_rejected(key):
    other = SecretKey.generate()
    signature = sign(MESSAGE, other, trusted_comment=COMMENT, untrusted_comment="x")
    with pytest.raises(SignatureInvalid, match="signed with key"):
        verify(MESSAGE, signature, key.public_key)


def test_a_changed_message_is_rejected(key):
    signature = sign(MESSAGE, key, trusted_comment=COMMENT, untrusted_comment="x")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify(MESSAGE + b" ", signature, key.public_key)


def test_key_files_round_trip(key):
    assert SecretKey.from_file(key.to_file()) == key
    assert PublicKey.from_text(key.public_key.to_file()) == key.public_key
    assert PublicKey.from_text(key.public_key.base64) == key.public_key  # the -P string


def test_public_key_file_has_minisign_header_with_key_id(key):
    first_line = key.public_key.to_file().splitlines()[0]
    assert first_line == f"untrusted comment: minisign public key {key.key_id_text}"


def test_a_secret_key_with_a_bad_checksum_is_refused(key):
    import base64

    lines = key.to_file().splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[-1] ^= 0xFF
    with pytest.raises(KeyFormatError, match="checksum"):
        SecretKey.from_file(lines[0] + "\n" + base64.b64encode(bytes(raw)).decode())


def test_secret_keys_never_show_their_bytes(key):
    assert key.seed.hex() not in repr(key)
