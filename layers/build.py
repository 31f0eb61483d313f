"""Build the Lambda layer without Docker: the pinned runtime dependencies for the Lambda
platform, plus the ``difusion`` domain package (not its local-only parts).

    python layers/build.py [--out layers/build]

The result is byte-identical for the same inputs (no bytecode, no console scripts, no
timestamps in file contents), so the CDK asset hash only changes when an input does.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORM = "manylinux2014_aarch64"  # the functions run on arm64 (Graviton)
# The functions' Python (stacks/institute reads the same file): the suite runs on it too.
PYTHON_VERSION = (ROOT / ".python-version").read_text().strip()
# Parts of the package that only the operators' machines use.
EXCLUDED = {"local", "preflight", "memoria", "cli.py", "generator.py", "window_timer.py"}


def source_files() -> list[Path]:
    files = [ROOT / "requirements.txt", Path(__file__).resolve()]
    for path in sorted((ROOT / "difusion").rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        relative = path.relative_to(ROOT / "difusion")
        if relative.parts[0] not in EXCLUDED:
            files.append(path)
    return files


def inputs_digest() -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes: equal trees, equal digests."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(out: Path) -> Path:
    stamp = out / ".inputs-sha256"
    expected = inputs_digest()
    if stamp.is_file() and stamp.read_text() == expected:
        return out
    if out.exists():
        shutil.rmtree(out)
    target = out / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(target),
            "--platform",
            PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            PYTHON_VERSION,
            "--only-binary=:all:",
            "--no-compile",
            "-r",
            str(ROOT / "requirements.txt"),
        ],
        check=True,
    )
    shutil.copytree(
        ROOT / "difusion",
        target / "difusion",
        ignore=lambda directory, names: [
            n
            for n in names
            if n == "__pycache__" or (Path(directory) == ROOT / "difusion" and n in EXCLUDED)
        ],
    )
    # Console scripts embed the build machine's interpreter path (and so do their lines in
    # RECORD); Lambda never runs them. Caches are not inputs either.
    shutil.rmtree(target / "bin", ignore_errors=True)
    for record in target.glob("*.dist-info/RECORD"):
        lines = record.read_text().splitlines(keepends=True)
        record.write_text("".join(line for line in lines if not line.startswith("../../bin/")))
    for cache in list(target.rglob("__pycache__")):
        shutil.rmtree(cache)
    stamp.write_text(expected)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "layers" / "build")
    args = parser.parse_args()
    out = build(args.out)
    print(f"layer built in {out} ({tree_digest(out / 'python')[:16]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
