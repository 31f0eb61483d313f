"""The stock minisign tool, which `make test` installs (Debian package)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def minisign() -> str:
    path = shutil.which("minisign")
    assert path, "minisign is not installed: run `make tools` (apt-get install minisign)"
    return path


def minisign_verify(
    message: Path, signature: Path, public_key: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [minisign(), "-V", "-m", str(message), "-x", str(signature), "-p", str(public_key)],
        capture_output=True,
        text=True,
        check=False,
    )
