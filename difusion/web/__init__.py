"""The verification page every publication carries (``.well-known/prep/verificar.html``)."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def verification_page() -> bytes:
    """The page's bytes: self-contained HTML and JavaScript, no third-party code."""
    return resources.files(__package__).joinpath("verificar.html").read_bytes()


def verification_page_sha256() -> str:
    return hashlib.sha256(verification_page()).hexdigest()
