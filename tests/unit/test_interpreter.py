"""One Python: the suite runs on the version the Lambdas run (``.python-version``), which the
layer is built for and the stacks deploy."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_suite_runs_on_the_lambdas_python():
    # Given the one version the repository names
    version = (ROOT / ".python-version").read_text().strip()

    # Then this interpreter is that version (make's venv refuses any other)
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == version


def test_the_layer_is_built_for_that_version():
    # Given the layer builder's target (imported without building anything)
    from layers import build as layer_build

    # Then it is the same version
    assert (ROOT / ".python-version").read_text().strip() == layer_build.PYTHON_VERSION
