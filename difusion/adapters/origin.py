"""The origin bucket: incoming packages, staged content, drafts, manifests and the key.

Layout::

    incoming/<package>                       what UCSI uploads
    objects/sha256/<hex>                     every file's content, staged once
    drafts/<snapshot_id>.<sha>.json          ingest's manifest draft, before signing
    manifests/<sequence>_<snapshot_id>.json  every accepted manifest (+ ``.minisig``)
    keys/prep.pub                            the public key the manifests verify with
    public/difusores.{json,html}             the public list of difusores oficiales
    closing/<election>/registro-de-cierre.*  the closing record, under retention
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, BinaryIO, Protocol

from botocore.exceptions import ClientError

INCOMING_PREFIX = "incoming/"
STAGED_PREFIX = "objects/sha256/"
PUBLIC_KEY_KEY = "keys/prep.pub"
PUBLIC_PREFIX = "public/"  # what the institute's own portal publishes (the difusores list)
CLOSING_PREFIX = "closing/"
_DOWNLOAD_CHUNK = 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def staged_key(sha256: str) -> str:
    return f"{STAGED_PREFIX}{sha256}"


def draft_key(snapshot_id: str, package_sha256: str) -> str:
    # The package hash keeps two uploads under one name from overwriting each other's draft.
    return f"drafts/{snapshot_id}.{package_sha256[:16]}.json"


def manifest_key(sequence: int, snapshot_id: str) -> str:
    return f"manifests/{sequence:06d}_{snapshot_id}.json"


def signature_key(manifest_key: str) -> str:
    return manifest_key + ".minisig"


class OriginStore:
    """The institute's origin bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def download(self, key: str, sink: BinaryIO, version_id: str = "") -> tuple[int, str]:
        """Stream an object (the given version, if any) into ``sink`` in fixed chunks;
        return its size and SHA-256."""
        version = {"VersionId": version_id} if version_id else {}
        body = self._s3.get_object(Bucket=self.bucket, Key=key, **version)["Body"]
        digest = hashlib.sha256()
        size = 0
        for chunk in body.iter_chunks(_DOWNLOAD_CHUNK):
            digest.update(chunk)
            sink.write(chunk)
            size += len(chunk)
        sink.flush()
        return size, digest.hexdigest()

    def stage_bytes(self, sha256: str, data: bytes) -> None:
        """Store one file's content under its hash (content-addressed, write-once)."""
        self._s3.put_object(
            Bucket=self.bucket, Key=staged_key(sha256), Body=data, Metadata={"sha256": sha256}
        )

    def stage_stream(self, sha256: str, stream: Readable) -> None:
        """Like :meth:`stage_bytes` for large files: a multipart upload in bounded chunks."""
        self._s3.upload_fileobj(
            stream, self.bucket, staged_key(sha256), ExtraArgs={"Metadata": {"sha256": sha256}}
        )

    def put_bytes(self, key: str, data: bytes, content_type: str) -> str:
        """Write ``key``; returns the version written (empty where unversioned)."""
        response = self._s3.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
        )
        return str(response.get("VersionId") or "")

    def get_bytes(self, key: str) -> bytes:
        data: bytes = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return data

    def get_bytes_if_exists(self, key: str) -> bytes | None:
        try:
            return self.get_bytes(key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def size_of(self, key: str) -> int:
        return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

    def retain(self, key: str, until: datetime, version_id: str = "") -> str:
        """Put ``key`` (that version, or the current one) under compliance-mode Object Lock
        until ``until``: no one can delete or overwrite that version before then. Returns
        the version locked. Without a version it reads the current one (``HeadObject``:
        ``s3:GetObject`` on the key)."""
        version = version_id or str(
            self._s3.head_object(Bucket=self.bucket, Key=key).get("VersionId", "")
        )
        self._s3.put_object_retention(
            Bucket=self.bucket,
            Key=key,
            **({"VersionId": version} if version else {}),
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
        )
        return version

    def delete(self, keys: list[str]) -> None:
        """Remove ``keys`` (a delete marker each: the versioned bucket keeps what was
        there for the record); a missing key is not an error."""
        for key in keys:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
