"""Ed25519 signatures in minisign's formats, so anyone can check them with ``minisign -V``.

Signatures are minisign's prehashed kind (``ED``): Ed25519 over BLAKE2b-512 of the file,
plus a global signature over that signature and the trusted comment, which therefore
cannot be altered. Keys are minisign's public and (unencrypted) secret key files; the
secret key's protection is Secrets Manager's KMS encryption, not a password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from difusion.errors import KeyFormatError, SignatureInvalid

_PUBLIC_ALG = b"Ed"
_PREHASHED_ALG = b"ED"
_LEGACY_ALG = b"Ed"
_KDF_NONE = b"\x00\x00"
_CHECKSUM_ALG = b"B2"
_PUBLIC_COMMENT = "untrusted comment: minisign public key "
_SECRET_COMMENT = "untrusted comment: minisign secret key"
_TRUSTED = "trusted comment: "


def _key_id_text(key_id: bytes) -> str:
    # minisign prints the key id as a little-endian 64-bit number in upper-case hex.
    return f"{int.from_bytes(key_id, 'little'):016X}"


@dataclass(frozen=True)
class PublicKey:
    """A minisign public key: 8-byte key id and 32-byte Ed25519 key."""

    key_id: bytes
    key: bytes

    @property
    def key_id_text(self) -> str:
        return _key_id_text(self.key_id)

    @property
    def base64(self) -> str:
        """The key string minisign accepts with ``-P``."""
        return base64.b64encode(_PUBLIC_ALG + self.key_id + self.key).decode("ascii")

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw Ed25519 key, for people to compare out of band."""
        digest = hashlib.sha256(self.key).hexdigest().upper()
        return ":".join(digest[i : i + 4] for i in range(0, 64, 4))

    def to_file(self) -> str:
        return f"{_PUBLIC_COMMENT}{self.key_id_text}\n{self.base64}\n"

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        """Parse a public key file, or the bare base64 key string."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        if not lines:
            raise KeyFormatError("empty public key")
        encoded = lines[-1] if len(lines) <= 2 else ""
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise KeyFormatError("public key is not base64") from None
        if len(raw) != 42 or raw[:2] != _PUBLIC_ALG:
            raise KeyFormatError("not a minisign Ed25519 public key")
        return cls(key_id=raw[2:10], key=raw[10:])


@dataclass(frozen=True)
class SecretKey:
    """A minisign secret key. Never logged, never written outside the key store or a file
    the operator asked for."""

    key_id: bytes
    seed: bytes

    def __repr__(self) -> str:
        return f"SecretKey(key_id={self.key_id_text})"

    @property
    def key_id_text(self) -> str:
        return _key_id_text(self.key_id)

    @property
    def _signing_key(self) -> SigningKey:
        return SigningKey(self.seed)

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(key_id=self.key_id, key=bytes(self._signing_key.verify_key))

    def to_file(self) -> str:
        secret = self.seed + self.public_key.key
        checksum = hashlib.blake2b(_PUBLIC_ALG + self.key_id + secret, digest_size=32).digest()
        raw = (
            _PUBLIC_ALG
            + _KDF_NONE
            + _CHECKSUM_ALG
            + bytes(32)  # salt: unused without a KDF
            + bytes(8)  # opslimit
            + bytes(8)  # memlimit
            + self.key_id
            + secret
            + checksum
        )
        return f"{_SECRET_COMMENT}\n{base64.b64encode(raw).decode('ascii')}\n"

    @classmethod
    def from_file(cls, text: str) -> SecretKey:
        """Parse an unencrypted minisign secret key file."""
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        try:
            raw = base64.b64decode(lines[-1], validate=True)
        except (IndexError, ValueError):
            raise KeyFormatError("secret key is not base64") from None
        if len(raw) != 158 or raw[:2] != _PUBLIC_ALG or raw[4:6] != _CHECKSUM_ALG:
            raise KeyFormatError("not a minisign Ed25519 secret key")
        if raw[2:4] != _KDF_NONE:
            raise KeyFormatError(
                "the secret key is password-protected; store it unencrypted in the key store"
            )
        key_id, secret, checksum = raw[54:62], raw[62:126], raw[126:158]
        expected = hashlib.blake2b(_PUBLIC_ALG + key_id + secret, digest_size=32).digest()
        # minisign leaves the checksum zeroed in keys it writes unencrypted (-W).
        if checksum != bytes(32) and not hmac.compare_digest(checksum, expected):
            raise KeyFormatError("secret key checksum does not match")
        key = cls(key_id=key_id, seed=secret[:32])
        if key.public_key.key != secret[32:]:
            raise KeyFormatError("secret key halves do not belong together")
        return key

    @classmethod
    def generate(cls) -> SecretKey:
        return cls(key_id=os.urandom(8), seed=bytes(SigningKey.generate()))


def sign(
    message: bytes, secret_key: SecretKey, *, trusted_comment: str, untrusted_comment: str
) -> str:
    """Return a minisign signature file (prehashed) for ``message``."""
    if "\n" in trusted_comment or "\n" in untrusted_comment:
        raise ValueError("comments are single lines")
    signing_key = secret_key._signing_key
    prehash = hashlib.blake2b(message, digest_size=64).digest()
    signature = signing_key.sign(prehash).signature
    global_signature = signing_key.sign(signature + trusted_comment.encode("utf-8")).signature
    encoded = base64.b64encode(_PREHASHED_ALG + secret_key.key_id + signature).decode("ascii")
    return (
        f"untrusted comment: {untrusted_comment}\n"
        f"{encoded}\n"
        f"{_TRUSTED}{trusted_comment}\n"
        f"{base64.b64encode(global_signature).decode('ascii')}\n"
    )


def verify(message: bytes, signature_file: str, public_key: PublicKey) -> str:
    """Verify a minisign signature file over ``message``; return its trusted comment.

    Raises :class:`SignatureInvalid` naming what failed.
    """
    lines = signature_file.splitlines()
    if len(lines) < 4 or not lines[2].startswith(_TRUSTED):
        raise SignatureInvalid("not a minisign signature file")
    try:
        raw = base64.b64decode(lines[1], validate=True)
        global_signature = base64.b64decode(lines[3], validate=True)
    except ValueError:
        raise SignatureInvalid("signature is not base64") from None
    if len(raw) != 74 or len(global_signature) != 64:
        raise SignatureInvalid("signature has the wrong length")
    algorithm, key_id, signature = raw[:2], raw[2:10], raw[10:]
    if key_id != public_key.key_id:
        raise SignatureInvalid(
            f"signed with key {_key_id_text(key_id)}, not with {public_key.key_id_text}"
        )
    if algorithm == _PREHASHED_ALG:
        signed = hashlib.blake2b(message, digest_size=64).digest()
    elif algorithm == _LEGACY_ALG:
        signed = message
    else:
        raise SignatureInvalid("unknown signature algorithm")
    trusted_comment = lines[2][len(_TRUSTED) :]
    verify_key = VerifyKey(public_key.key)
    try:
        verify_key.verify(signed, signature)
    except BadSignatureError:
        raise SignatureInvalid("signature does not match the file") from None
    try:
        verify_key.verify(signature + trusted_comment.encode("utf-8"), global_signature)
    except BadSignatureError:
        raise SignatureInvalid("trusted comment was altered") from None
    return trusted_comment
