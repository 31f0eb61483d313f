#!/usr/bin/env python3
"""The CDK app: the institute's stack and a difusor's stack, from their config files.

Stack names carry the election (``DifusionInstitute-dip-loc-bcs``), so a drill with its own
election id deploys beside the election in the same accounts.

cdk synth                                        both, from config/institute.json and
                                                 config/difusor.json
cdk deploy -c stacks=institute 'DifusionInstitute-*'   the institute, in its account
cdk deploy -c stacks=difusor 'DifusionDifusor-*'       a difusor, in its own account: needs
                                                 neither the institute's config nor the layer
cdk synth -c institute_config=PATH -c difusor_config=PATH
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from difusion.topology import DIFUSOR_REGION, election_slug
from stacks.config import ConfigError, DifusorConfig, InstituteConfig, load_json

ROOT = Path(__file__).resolve().parent
STACK_KINDS = ("institute", "difusor")


def selected_stacks(app: cdk.App) -> tuple[str, ...]:
    """``-c stacks=difusor`` builds only the difusor's stack (the default: both)."""
    raw = str(app.node.try_get_context("stacks") or ",".join(STACK_KINDS))
    kinds = tuple(k.strip() for k in raw.split(",") if k.strip())
    unknown = [k for k in kinds if k not in STACK_KINDS]
    if unknown or not kinds:
        raise ConfigError(f"-c stacks= takes {' and/or '.join(STACK_KINDS)}, got {raw!r}")
    return kinds


def build_app(app: cdk.App) -> tuple[cdk.Stack | None, cdk.Stack | None]:
    kinds = selected_stacks(app)
    institute_stack = difusor_stack = None
    if "institute" in kinds:
        # Imported here: the institute's stack needs the Lambda layer, a difusor's does not.
        from stacks.institute.institute_stack import InstituteStack

        path = Path(
            app.node.try_get_context("institute_config") or ROOT / "config" / "institute.json"
        )
        institute = InstituteConfig.from_json(load_json(path))
        institute_stack = InstituteStack(
            app,
            f"DifusionInstitute-{election_slug(institute.election_id)}",
            config=institute,
            env=cdk.Environment(account=institute.account, region=institute.region),
            description=f"difusion: PREP publication pipeline for {institute.election_id}",
        )
    if "difusor" in kinds:
        from stacks.difusor.difusor_stack import DifusorStack

        path = Path(app.node.try_get_context("difusor_config") or ROOT / "config" / "difusor.json")
        difusor = DifusorConfig.from_json(load_json(path))
        difusor_stack = DifusorStack(
            app,
            f"DifusionDifusor-{election_slug(difusor.election_id)}",
            config=difusor,
            env=cdk.Environment(account=difusor.account, region=DIFUSOR_REGION),
            description=f"difusion: PREP site of difusor {difusor.difusor_id} for "
            f"{difusor.election_id}",
        )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return institute_stack, difusor_stack


if __name__ == "__main__":
    application = cdk.App()
    build_app(application)
    application.synth()
