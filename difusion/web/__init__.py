"""The verification pages, built from one verifier (``verifier.js``) and one style sheet.

- ``verificar.html``: every publication carries it (``.well-known/prep/verificar.html``); it
  verifies the site it is served from, with the key that site publishes.
- ``verificador.html``: the institute publishes it on its own portal; the institute's key is
  pinned inside it, and it verifies any difusor cross-origin without running anything the
  difusor serves.

Both are self-contained HTML: no third-party code, nothing loaded but the files they check.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources

from difusion.signing import PublicKey

VERIFIER_PAGE = "verificador.html"


def _read(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _assemble(template: str, **parts: str) -> str:
    # the acta lookup's form, then the script, the same on both pages
    page = template.replace("<!--CONSULTA-->\n", _read("consulta.html"))
    page = page.replace("/*STYLE*/", _read("style.css").strip())
    page = page.replace("/*VERIFIER*/", _read("verifier.js").strip())
    for name, value in parts.items():
        page = page.replace(f"/*{name}*/", value)
    left = [n for n in ("STYLE", "VERIFIER", "PINNED") if f"/*{n}*/" in page]
    left += ["CONSULTA"] if "<!--CONSULTA-->" in page else []
    if left:
        raise ValueError(f"a verification page was left with placeholders: {left}")
    return page


def _script_string(value: str) -> str:
    """A JavaScript string literal safe inside an inline ``<script>``."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


@lru_cache(maxsize=1)
def verification_page() -> bytes:
    """The page each site carries: its bytes are the same for every site and every cut."""
    return _assemble(_read("verificar.html")).encode("utf-8")


def verification_page_sha256() -> str:
    return hashlib.sha256(verification_page()).hexdigest()


def institute_verifier_page(public_key: PublicKey, institute: str) -> bytes:
    """The institute's verifier, with ``public_key`` pinned in it."""
    pinned = (
        f"const PINNED_KEY = {_script_string(public_key.base64)};\n"
        f"const INSTITUTE = {_script_string(institute)};"
    )
    return _assemble(_read("verificador.html"), PINNED=pinned).encode("utf-8")
