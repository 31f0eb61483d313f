"""cdk-nag's AWS Solutions checks, cfn-lint, and reproducible layer builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from layers.build import build, tree_digest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.infrastructure


@pytest.mark.parametrize("index", [1, 2], ids=["institute", "difusor"])
def test_cdk_nag_aws_solutions_finds_nothing_unacknowledged(synthesized, index):
    app, stack = synthesized[0], synthesized[index]
    report = AwsSolutionsChecks(app).validate_scope(stack)
    assert report.violations == [], [
        (v.rule_name, [r.resource_logical_id for r in v.violating_resources])
        for v in report.violations
    ]
    assert report.success


def test_cdk_nag_does_catch_a_violation_in_this_setup():
    # A control: the same checks, on a bucket with none of the protections, must complain.
    app = cdk.App()
    stack = cdk.Stack(app, "Control")
    s3.Bucket(stack, "Careless")
    report = AwsSolutionsChecks(app).validate_scope(stack)
    assert not report.success
    assert any("AwsSolutions-S10" in v.rule_name for v in report.violations)


def test_every_acknowledgment_gives_a_reason(synthesized):
    from aws_cdk import Validations

    acknowledged = []
    for stack in synthesized[1:]:
        for construct in stack.node.find_all():
            for entry in construct.node.metadata:
                if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                    acknowledged.append(entry.data)
    assert acknowledged
    # Each entry maps 'Annotation::<rule id>' to the reason given for it.
    reasons = {rule: reason for data in acknowledged for rule, reason in data.items()}
    assert len(reasons) >= 10
    for rule, reason in reasons.items():
        assert rule.startswith("Annotation::AwsSolutions-"), rule
        assert len(reason) >= 30, (rule, reason)


def test_cfn_lint_is_clean_on_the_synthesized_templates(synthesized):
    outdir = Path(synthesized[0].outdir)
    templates = sorted(str(p) for p in outdir.glob("*.template.json"))
    assert len(templates) == 2
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--config-file",
            str(ROOT / ".cfnlintrc.yaml"),
            "--",
            *templates,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layer_rebuilds_byte_for_byte(tmp_path):
    first = build(ROOT / "layers" / "build")
    second = build(tmp_path / "layer")
    assert tree_digest(first / "python") == tree_digest(second / "python")
    assert not (second / "python" / "bin").exists()
    assert not list((second / "python").rglob("__pycache__"))
    assert (second / "python" / "difusion" / "manifest.py").is_file()
    assert not (second / "python" / "difusion" / "local").exists()
