"""Synthesize both stacks once per session, from the example configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
from aws_cdk.assertions import Template

from app import build_app
from layers.build import build as build_layer
from stacks.config import DifusorConfig, InstituteConfig, load_json

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = json.loads((ROOT / "cdk.json").read_text())["context"]


def synth(
    outdir: Path, institute: dict[str, Any] | None = None, difusor: dict[str, Any] | None = None
) -> tuple[cdk.App, Any, Any]:
    build_layer(ROOT / "layers" / "build")
    context = dict(CONTEXT)
    for key, override in (("institute_config", institute), ("difusor_config", difusor)):
        if override is not None:
            path = outdir.parent / f"{key}.json"
            path.write_text(json.dumps(override))
            context[key] = str(path)
    app = cdk.App(outdir=str(outdir), context=context)
    institute_stack, difusor_stack = build_app(app)
    app.synth()
    return app, institute_stack, difusor_stack


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory):
    return synth(tmp_path_factory.mktemp("synth") / "cdk.out")


@pytest.fixture(scope="session")
def institute(synthesized) -> Template:
    return Template.from_stack(synthesized[1])


@pytest.fixture(scope="session")
def difusor(synthesized) -> Template:
    return Template.from_stack(synthesized[2])


@pytest.fixture(scope="session")
def institute_config() -> InstituteConfig:
    return InstituteConfig.from_json(load_json(ROOT / "config" / "institute.json"))


@pytest.fixture(scope="session")
def difusor_config() -> DifusorConfig:
    return DifusorConfig.from_json(load_json(ROOT / "config" / "difusor.json"))
