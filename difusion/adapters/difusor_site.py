"""A difusor's site: its bucket, written with the institute's own credentials under the
bucket's policy, and its CloudFront distribution, invalidated through the delivery role in
the difusor's account.

The difusor never holds any access to the institute's origin: server-side copies read the
source and write the target with one principal's credentials, and that principal is the
institute's (publisher or monitor). Only the invalidation needs the difusor's role, assumed
with its external id when first needed and reused while its credentials last.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from difusion.models import Difusor
from difusion.times import parse_iso
from difusion.topology import DIFUSOR_REGION

T = TypeVar("T")

CACHE_CONTROL = "no-cache"
_COPY_OBJECT_MAX = 5 * 1024**3
_DELETE_BATCH = 1000
_INVALIDATION_RETRYABLE = {
    "TooManyInvalidationsInProgress",
    "Throttling",
    "ThrottlingException",
    "ServiceUnavailable",
    "RequestLimitExceeded",
}


def retry_with_backoff(
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
    """Writes into one difusor's bucket and invalidates its distribution."""

    def __init__(self, difusor: Difusor, s3: Any, cloudfront: Callable[[], Any]) -> None:
        self.difusor = difusor
        self._s3 = s3
        self._cloudfront = cloudfront  # built on first use: assuming the role costs a call

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

    def list_keys(self) -> list[str]:
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.difusor.bucket):
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

    def invalidate_all(self, caller_reference: str, sleep: Callable[[float], None]) -> str:
        """One ``/*`` invalidation; the caller reference makes a retried call idempotent."""

        def create() -> str:
            response = self._cloudfront().create_invalidation(
                DistributionId=self.difusor.distribution_id,
                InvalidationBatch={
                    "Paths": {"Quantity": 1, "Items": ["/*"]},
                    "CallerReference": caller_reference,
                },
            )
            return str(response["Invalidation"]["Id"])

        return retry_with_backoff(create, _INVALIDATION_RETRYABLE, sleep=sleep)


class DifusorSites:
    """Opens :class:`DifusorSite` sessions: the institute's own S3 client for the bucket (in
    the sites' region), and the difusor's delivery role for its CDN."""

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
        self._s3 = s3 or boto3.session.Session().client(
            "s3", region_name=DIFUSOR_REGION, config=self._config
        )
        self._clock = clock
        self._cdn: dict[str, tuple[datetime, Any]] = {}
        self._lock = threading.Lock()

    def open(self, difusor: Difusor) -> DifusorSite:
        return DifusorSite(difusor, s3=self._s3, cloudfront=lambda: self._cloudfront(difusor))

    def _cloudfront(self, difusor: Difusor) -> Any:
        key = f"{difusor.role_arn}|{difusor.external_id}"
        with self._lock:
            cached = self._cdn.get(key)
            if cached and cached[0] - self._RENEW_BEFORE > self._clock():
                return cached[1]
            credentials = self._sts.assume_role(
                RoleArn=difusor.role_arn,
                RoleSessionName=self._session_name[:64],
                ExternalId=difusor.external_id,
                DurationSeconds=3600,
            )["Credentials"]
            client = boto3.session.Session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            ).client("cloudfront", config=self._config)
            expires = credentials["Expiration"]
            if isinstance(expires, str):
                expires = parse_iso(expires)
            self._cdn[key] = (expires, client)
            return client
