"""The ledger's words (codes and notes the monitor writes in English) as the memoria's
Spanish reader reads them. Anything not known is shown as the ledger wrote it."""

from __future__ import annotations

import re

KINDS = {
    "continuity": "continuidad",
    "integrity": "integridad",
    "upstream_stall": "sin cortes nuevos del Instituto",
}
CAUSES = {
    "ok": "correcto",
    "unreachable": "sitio inaccesible",
    "no_manifest": "sin manifiesto firmado",
    "bad_signature": "firma que no verifica",
    "stale": "copia desactualizada",
    "wrong_manifest": "manifiesto distinto del entregado",
    "altered": "archivos alterados",
    "updating": "actualización en curso",
    "no new snapshot": "sin cortes nuevos",
}
# (pattern, Spanish with the pattern's groups)
NOTES: tuple[tuple[str, str], ...] = (
    (r"^transmission interrupted$", "transmisión interrumpida (sitio suspendido)"),
    (r"^notice shown on its portal$", "aviso publicado en su portal"),
    (r"^notice not shown: (.*)$", r"no se pudo publicar el aviso: \1"),
    (r"^redelivery of (\d+) altered files requested$", r"se pidió reenviar \1 archivos alterados"),
    (r"^reinstated: (.*)$", r"reincorporado: \1"),
    (r"^reinstated by UCSI: (.*)$", r"reincorporado por la UCSI: \1"),
    (r"^recovered: (.*)$", r"recuperado: \1"),
    (r"^a new snapshot arrived$", "llegó un corte nuevo"),
)


def kind(code: str | None) -> str:
    return KINDS.get(code or "", code or "—")


def cause(code: str | None) -> str:
    return CAUSES.get(code or "", code or "—")


def note(text: str | None) -> str:
    """An action or a resolution the ledger recorded, in Spanish when its form is known."""
    if not text:
        return "—"
    for pattern, spanish in NOTES:
        if re.match(pattern, text):
            return re.sub(pattern, spanish, text)
    return text
