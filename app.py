#!/usr/bin/env python3
"""The CDK app: the institute's stack and a difusor's stack, from their config files.

cdk synth                                  both, from config/institute.json and
                                           config/difusor.json
cdk deploy DifusionInstitute               the institute, in its account
cdk deploy DifusionDifusor                 a difusor, in its own account
cdk synth -c institute_config=PATH -c difusor_config=PATH
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from stacks.config import DifusorConfig, InstituteConfig, load_json
from stacks.difusor.difusor_stack import DIFUSOR_REGION, DifusorStack
from stacks.institute.institute_stack import InstituteStack

ROOT = Path(__file__).resolve().parent


def build_app(app: cdk.App) -> tuple[InstituteStack, DifusorStack]:
    institute_path = Path(
        app.node.try_get_context("institute_config") or ROOT / "config" / "institute.json"
    )
    difusor_path = Path(
        app.node.try_get_context("difusor_config") or ROOT / "config" / "difusor.json"
    )
    institute = InstituteConfig.from_json(load_json(institute_path))
    difusor = DifusorConfig.from_json(load_json(difusor_path))
    institute_stack = InstituteStack(
        app,
        "DifusionInstitute",
        config=institute,
        env=cdk.Environment(account=institute.account, region=institute.region),
        description=f"difusion: PREP publication pipeline for {institute.election_id}",
    )
    difusor_stack = DifusorStack(
        app,
        "DifusionDifusor",
        config=difusor,
        env=cdk.Environment(account=difusor.account, region=DIFUSOR_REGION),
        description=f"difusion: PREP site of difusor {difusor.difusor_id}",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return institute_stack, difusor_stack


if __name__ == "__main__":
    application = cdk.App()
    build_app(application)
    application.synth()
