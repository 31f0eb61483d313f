"""Where a copy of a site is read from, for verification: a web site, a directory, a bucket."""

from __future__ import annotations

import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from botocore.exceptions import ClientError

from difusion.adapters.public_site import HttpSiteReader, site_url
from difusion.adapters.sessions import new_session
from difusion.continuity import NotServed, SiteUnreachable


class SiteSource(Protocol):
    label: str

    def read(self, path: str) -> bytes:
        """The bytes at ``path``; raise NotServed (absent) or SiteUnreachable."""
        ...

    def paths(self) -> list[str] | None:
        """Every path the copy holds, or ``None`` when it cannot be listed (a web site)."""
        ...


class WebSource:
    """A site over HTTPS, read as one version: the one its signed manifest leads to when
    first read (``version``, ``None`` for a site without versions)."""

    def __init__(self, base_url: str, reader: HttpSiteReader | None = None) -> None:
        site_url(base_url, "x")  # https, or http on loopback only: fails early otherwise
        self.label = base_url
        self._site = base_url
        self._base: str | None = None
        self.version: int | None = None
        self._reader = reader or HttpSiteReader()

    def read(self, path: str) -> bytes:
        if self._base is None:
            self._base, self.version = self._reader.pin(self._site)
            if self.version is not None:
                self.label = f"{self._site} (site version {self.version})"
        return self._reader.read(self._base, path)

    def paths(self) -> list[str] | None:
        return None


class DirectorySource:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise ValueError(f"{root} is not a directory")
        self.label = str(root)
        self._root = root.resolve()

    def read(self, path: str) -> bytes:
        relative = PurePosixPath(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise NotServed(f"{path} is outside the copy")
        file = self._root.joinpath(*relative.parts)
        try:
            return file.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotServed(f"{path} is not in {self.label}") from None
        except OSError as exc:
            raise SiteUnreachable(f"{path}: {exc}") from None

    def paths(self) -> list[str] | None:
        return sorted(
            p.relative_to(self._root).as_posix() for p in self._root.rglob("*") if p.is_file()
        )


class BucketSource:
    def __init__(self, s3: Any, bucket: str, prefix: str = "") -> None:
        self.label = f"s3://{bucket}/{prefix}"
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix

    def read(self, path: str) -> bytes:
        try:
            body: bytes = self._s3.get_object(Bucket=self._bucket, Key=self._prefix + path)[
                "Body"
            ].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                raise NotServed(f"{path} is not in {self.label}") from None
            raise SiteUnreachable(f"{self.label}{path}: {code or exc}") from None
        return body

    def paths(self) -> list[str] | None:
        found: list[str] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix
            ):
                found.extend(item["Key"][len(self._prefix) :] for item in page.get("Contents", []))
        except ClientError as exc:
            raise SiteUnreachable(f"{self.label}: {exc}") from None
        return sorted(found)


def open_source(target: str, s3: Any = None) -> SiteSource:
    """``https://…`` (or ``http://127.0.0.1…``), ``s3://bucket[/prefix]`` or a directory."""
    if target.startswith(("https://", "http://")):
        return WebSource(target)
    if target.startswith("s3://"):
        parsed = urllib.parse.urlsplit(target)
        prefix = parsed.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if s3 is None:
            s3 = new_session().client("s3")
        return BucketSource(s3, parsed.netloc, prefix)
    return DirectorySource(Path(target))
