"""The ledger's words (codes and notes the functions write in English) as the public reads
them, in Spanish: the memoria técnica, the closing record and the institute's public board.
Anything not known is shown as the ledger wrote it."""

from __future__ import annotations

import re

KINDS = {
    "continuity": "continuidad",
    "availability": "disponibilidad",
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
    "timeout": "tiempo de espera agotado",
    "no new snapshot": "sin cortes nuevos",
}
# A check's outcome as the public board shows it: a stable code and a sentence.
OUTCOMES = {
    "ok": ("verificado", "firma y manifiesto correctos; los archivos revisados coinciden"),
    "unreachable": ("inaccesible", "el sitio no respondió"),
    "no_manifest": ("sin_manifiesto", "el sitio no publica un manifiesto firmado"),
    "bad_signature": ("firma_invalida", "la firma del manifiesto no verifica"),
    "stale": ("desactualizado", "el sitio publica un corte anterior al entregado"),
    "wrong_manifest": ("manifiesto_distinto", "el manifiesto no es el entregado"),
    "altered": ("alterado", "archivos distintos de los firmados"),
    "updating": ("actualizando", "revisado durante una actualización; decide el siguiente periodo"),
}
STATUSES = {
    "active": "activo",
    "suspended": "transmisión interrumpida",
    "retired": "dado de baja",
}
# Why a snapshot was delivered (the prefix before ':' of a delivery's reason).
REASONS = {
    "accepted": "corte nuevo",
    "repair": "reparación",
    "reinstate": "reincorporación",
    "withdrawal": "retiro firmado",
    "release": "liberación en la apertura",
    "catch-up": "puesta al día",
}
REJECTIONS = {
    "bad_name": "nombre de paquete inválido",
    "wrong_election": "paquete de otra elección",
    "not_an_archive": "no es un archivo comprimido",
    "corrupt": "archivo dañado",
    "empty": "paquete vacío",
    "unsafe_path": "ruta insegura dentro del paquete",
    "bad_file_name": "nombre de archivo inválido",
    "reserved_path": "ruta reservada",
    "duplicate_path": "ruta repetida",
    "link": "enlace simbólico",
    "special_file": "archivo especial",
    "encrypted": "archivo cifrado",
    "too_large": "demasiado grande",
    "too_many_entries": "demasiados archivos",
    "compression_ratio": "proporción de compresión sospechosa",
    "checksum_mismatch": "suma de verificación distinta",
    "acta_integrity": "imagen de acta ausente o distinta de su CODIGO_INTEGRIDAD",
    "stale": "corte anterior al último publicado",
    "future_cut": "hora de corte en el futuro",
    "conflict": "mismo nombre con otro contenido",
    "window_closed": "fuera del periodo de publicación",
    "already_accepted": "corte ya aceptado (nunca se reemplaza)",
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
    (r"^repaired$", "reparado"),
    (r"^(\S+) alert$", r"\1 alerta"),
    (r"^(\S+) suspended$", r"\1 suspensión"),
)


def outcome(code: str | None) -> tuple[str, str]:
    """A check's outcome: (code, sentence), both in Spanish."""
    return OUTCOMES.get(code or "", (code or "—", code or "—"))


def status(code: str | None) -> str:
    return STATUSES.get(code or "", code or "—")


def reason(code: str | None) -> str:
    """A delivery's reason: ``repair:2024-06-02T21:15:00-07:00`` → ``reparación``."""
    head = (code or "").split(":", 1)[0]
    return REASONS.get(head, code or "—")


def rejection(code: str | None) -> str:
    return REJECTIONS.get(code or "", code or "—")


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
