"""A difusor's site: its bucket, written with the institute's own credentials under the
bucket's policy, and its version pointer, in the KeyValueStore of its distribution, written
through the delivery role in the difusor's account.

The difusor never holds any access to the institute's origin: server-side copies read the
source and write the target with one principal's credentials, and that principal is the
institute's (publisher or monitor). Only the pointer needs the difusor's role, assumed with
its external id when first needed and reused while its credentials last. The role's
credentials come from the regional STS endpoint (botocore's default, ``regional``): the
KeyValueStore's data plane refuses the global endpoint's version 1 session tokens.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError

from difusion.adapters.pointer_store import KeyValueStorePointer
from difusion.adapters.sessions import new_session
from difusion.models import Difusor
from difusion.times import parse_iso
from difusion.topology import DIFUSOR_REGION

CACHE_CONTROL = "no-cache"
_COPY_OBJECT_MAX = 5 * 1024**3
_DELETE_BATCH = 1000


def retry_with_backoff[T](
    call: Callable[[], T],
    retryable: set[str],
    *,
    attempts: int = 8,
    base_seconds: float = 0.5,
    cap_seconds: float = 20.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``, retrying AWS errors whose code is in ``retryable`` with full jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in retryable or attempt == attempts:
                raise
            sleep(random.uniform(0, min(cap_seconds, base_seconds * 2**attempt)))
    raise AssertionError("unreachable")


class DifusorSite:
    """Writes into one difusor's bucket and its version pointer."""

    def __init__(self, difusor: Difusor, s3: Any, role_client: Callable[[str], Any]) -> None:
        self.difusor = difusor
        self._s3 = s3
        self._role_client = role_client  # built on first use: assuming the role costs a call
        self._pointer: KeyValueStorePointer | None = None

    @property
    def pointer(self) -> KeyValueStorePointer:
        """The version pointer, through the difusor's delivery role."""
        if self._pointer is None:
            if not self.difusor.kvs_arn:
                raise RuntimeError(
                    f"{self.difusor.difusor_id} has no KeyValueStore registered (its stack's "
                    "KeyValueStoreArn output): versions cannot be switched"
                )
            self._pointer = KeyValueStorePointer(
                self._role_client("cloudfront-keyvaluestore"), self.difusor.kvs_arn
            )
        return self._pointer

    def copy_in(
        self,
        *,
        source_bucket: str,
        source_key: str,
        key: str,
        content_type: str,
        sha256: str,
        size: int,
    ) -> None:
        """Server-side copy from the origin: no object bytes pass through the function."""
        extra = {
            "MetadataDirective": "REPLACE",
            "ContentType": content_type,
            "CacheControl": CACHE_CONTROL,
            "Metadata": {"sha256": sha256} if sha256 else {},
        }
        source = {"Bucket": source_bucket, "Key": source_key}
        if size < _COPY_OBJECT_MAX:
            self._s3.copy_object(Bucket=self.difusor.bucket, Key=key, CopySource=source, **extra)
        else:
            self._s3.copy(source, self.difusor.bucket, key, ExtraArgs=extra)

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(
            Bucket=self.difusor.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            CacheControl=CACHE_CONTROL,
        )

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.difusor.bucket, Prefix=prefix
        )
        for page in pages:
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def delete(self, keys: Sequence[str]) -> int:
        deleted = 0
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            response = self._s3.delete_objects(
                Bucket=self.difusor.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise RuntimeError(
                    f"could not delete {len(response['Errors'])} objects from "
                    f"{self.difusor.bucket}, e.g. {first.get('Key')}: {first.get('Message')}"
                )
            deleted += len(batch)
        return deleted


class DifusorSites:
    """Opens :class:`DifusorSite` sessions: the institute's own S3 client for the bucket (in
    the sites' region), and the difusor's delivery role for its version pointer."""

    # Assumed credentials are renewed this long before they expire.
    _RENEW_BEFORE = timedelta(minutes=10)

    def __init__(
        self,
        sts: Any,
        session_name: str,
        max_pool: int,
        s3: Any | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sts = sts
        self._session_name = session_name
        self._config = Config(
            max_pool_connections=max_pool, retries={"mode": "standard", "max_attempts": 5}
        )
        self._s3 = s3 or new_session().client("s3", region_name=DIFUSOR_REGION, config=self._config)
        self._clock = clock
        # per role: when its credentials expire, and its session ("") and clients
        self._roles: dict[str, tuple[datetime, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def open(self, difusor: Difusor) -> DifusorSite:
        return DifusorSite(
            difusor, s3=self._s3, role_client=lambda service: self._client(difusor, service)
        )

    def _client(self, difusor: Difusor, service: str) -> Any:
        """A client of ``service`` with the difusor's delivery role, in the sites' region;
        the role is assumed again (and its clients built again) near its expiry."""
        key = f"{difusor.role_arn}|{difusor.external_id}"
        with self._lock:
            cached = self._roles.get(key)
            if cached is None or cached[0] - self._RENEW_BEFORE <= self._clock():
                expires, session = self._assume(difusor)
                cached = (expires, {"": session})
                self._roles[key] = cached
            clients = cached[1]
            session = clients[""]
            if service not in clients:
                clients[service] = session.client(
                    service, region_name=DIFUSOR_REGION, config=self._config
                )
            return clients[service]

    def _assume(self, difusor: Difusor) -> tuple[datetime, Any]:
        credentials = self._sts.assume_role(
            RoleArn=difusor.role_arn,
            RoleSessionName=self._session_name[:64],
            ExternalId=difusor.external_id,
            DurationSeconds=3600,
        )["Credentials"]
        session = new_session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        expires = credentials["Expiration"]
        if isinstance(expires, str):
            expires = parse_iso(expires)
        return expires, session
