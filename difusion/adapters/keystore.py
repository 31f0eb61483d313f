"""The signing key, kept in Secrets Manager as a minisign secret key file."""

from __future__ import annotations

from typing import Any

from difusion.signing import SecretKey


class SecretsManagerKeyStore:
    def __init__(self, secretsmanager: Any, secret_id: str) -> None:
        self._client = secretsmanager
        self._secret_id = secret_id
        self._cached: SecretKey | None = None

    def secret_key(self) -> SecretKey:
        # Cached for the life of the execution environment: one read per cold start.
        if self._cached is None:
            value = self._client.get_secret_value(SecretId=self._secret_id)["SecretString"]
            self._cached = SecretKey.from_file(value)
        return self._cached

    def store(self, secret_key: SecretKey) -> None:
        """Create or replace the stored key (operators' CLI only)."""
        text = secret_key.to_file()
        try:
            self._client.create_secret(Name=self._secret_id, SecretString=text)
        except self._client.exceptions.ResourceExistsException:
            self._client.put_secret_value(SecretId=self._secret_id, SecretString=text)
        self._cached = secret_key
