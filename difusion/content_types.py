"""Content types for the files of a PREP site, fixed so manifests do not depend on the host."""

from __future__ import annotations

import posixpath

_BY_EXTENSION = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".minisig": "text/plain; charset=utf-8",
    ".pub": "text/plain; charset=utf-8",
}


def content_type_for(path: str) -> str:
    """The Content-Type a difusor serves for ``path``."""
    extension = posixpath.splitext(path)[1].lower()
    return _BY_EXTENSION.get(extension, "application/octet-stream")
