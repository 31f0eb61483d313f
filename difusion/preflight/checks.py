"""Preflight's verdicts in the institute's account: pure functions over AWS's responses.

Each takes the response of one read-only call (as boto3 returns it, or as AWS's API
reference shows it) and returns :class:`CheckResult` lines; none makes a call.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from difusion.local.iam.evaluate import Policy, PolicyError, Principal, Request, evaluate
from difusion.models import Difusor, DifusorStatus
from difusion.preflight.requirements import Requirement

# The check names difusor mode and institute mode share.
DELIVERY_ROLE_TRUST = "delivery role trust"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: ✓ or ✗, and why."""

    check: str
    subject: str
    ok: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "subject": self.subject, "ok": self.ok, "reason": self.reason}

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> CheckResult:
        return cls(str(item["check"]), str(item["subject"]), bool(item["ok"]), str(item["reason"]))


def unreadable(check: str, subject: str, error: str) -> CheckResult:
    """A call that failed: the check cannot pass without its answer."""
    return CheckResult(check, subject, False, f"could not read it: {error}")


def policy_document(value: str | Mapping[str, Any]) -> dict[str, Any]:
    """A policy document as IAM's API returns it (URL-encoded JSON), as boto3 returns it
    (already a dict), or as S3 and Secrets Manager return it (plain JSON)."""
    if isinstance(value, Mapping):
        return dict(value)
    text = value.strip()
    if not text.startswith("{"):
        text = unquote(text)
    document = json.loads(text)
    if not isinstance(document, dict):
        raise PolicyError("a policy document must be a JSON object")
    return document


def external_id_tag(external_id: str) -> str:
    """Names an external id in a report without showing it: difusor mode writes it into the
    trust line's reason, institute mode matches it against the registry's."""
    return "external id sha256:" + hashlib.sha256(external_id.encode()).hexdigest()[:12]


def assumed_identity(whose: str) -> Policy:
    """A stand-in for identity policies preflight cannot read (the other account's): it
    allows everything, so the decision rests on the resource's own policy."""
    return Policy(
        f"{whose}'s identity policy (assumed to allow; checked in its own account)",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        },
    )


# --- who is asking --------------------------------------------------------------------


def check_credentials(identity: Mapping[str, Any], account: str, whose: str) -> CheckResult:
    """sts:GetCallerIdentity: the credentials are in the account the outputs describe."""
    caller = str(identity.get("Account", ""))
    arn = str(identity.get("Arn", ""))
    if caller == account:
        return CheckResult("credentials", f"account {account}", True, f"as {arn} ({whose})")
    return CheckResult(
        "credentials",
        f"account {account}",
        False,
        f"these credentials ({arn}) are for account {caller}, but the outputs describe "
        f"{whose} account {account}: use a profile in that account",
    )


# --- the registry ---------------------------------------------------------------------


def select_difusores(
    everyone: Sequence[Difusor], table: str, difusor_id: str | None
) -> tuple[CheckResult, tuple[Difusor, ...]]:
    """The registered difusores preflight checks: those not retired, or just
    ``difusor_id``."""
    current = [d for d in everyone if d.status is not DifusorStatus.RETIRED]
    subject = f"registry {table}"
    if difusor_id is not None:
        chosen = [d for d in everyone if d.difusor_id == difusor_id]
        if not chosen:
            known = ", ".join(sorted(d.difusor_id for d in everyone)) or "none"
            reason = f"{difusor_id} is not registered (registered: {known})"
            return CheckResult("registry", subject, False, reason), ()
        d = chosen[0]
        ok = d.status is not DifusorStatus.RETIRED
        reason = f"{d.difusor_id} is {d.status} (account {d.account_id}, bucket {d.bucket})"
        return CheckResult("registry", subject, ok, reason), tuple(chosen)
    if not current:
        reason = "no difusor registered: nothing would be published (difusion difusor register)"
        return CheckResult("registry", subject, False, reason), ()
    listed = ", ".join(f"{d.difusor_id} ({d.status})" for d in current)
    count = f"{len(current)} difusor{'es' if len(current) != 1 else ''}"
    return CheckResult("registry", subject, True, f"{count}: {listed}"), tuple(current)


# --- IAM's policy simulator -----------------------------------------------------------


def check_permission(
    requirement: Requirement, evaluation_results: Sequence[Mapping[str, Any]]
) -> CheckResult:
    """iam:SimulatePrincipalPolicy's EvaluationResults for one requirement: each action
    ``allowed`` (or, for what the function must not do, anything but ``allowed``)."""
    by_action = {
        str(r.get("EvalActionName", "")).lower(): r
        for r in evaluation_results
        if r.get("EvalResourceName", requirement.resource) in (requirement.resource, "*")
    }
    problems: list[str] = []
    grounds: list[str] = []
    for action in requirement.actions:
        result = by_action.get(action.lower())
        if result is None:
            problems.append(f"{action}: the simulator returned no result")
            continue
        decision = str(result.get("EvalDecision", ""))
        detail = _simulation_detail(result)
        if requirement.allowed and decision != "allowed":
            problems.append(f"{action}: {decision}{detail}")
        elif not requirement.allowed and decision == "allowed":
            problems.append(f"{action} is allowed{detail}, but {requirement.why}")
        elif requirement.allowed:
            grounds.extend(_sources(result))
    check = "permission" if requirement.allowed else "forbidden"
    if problems:
        reason = "; ".join(problems)
        return CheckResult(check, requirement.subject, False, f"{reason} ({requirement.resource})")
    actions = ", ".join(requirement.actions)
    if requirement.allowed:
        by = ", ".join(dict.fromkeys(grounds)) or "the role's policies"
        return CheckResult(check, requirement.subject, True, f"{actions} allowed by {by}")
    return CheckResult(check, requirement.subject, True, f"{actions} not allowed, as it must be")


def _sources(result: Mapping[str, Any]) -> list[str]:
    return [str(s.get("SourcePolicyId", "?")) for s in result.get("MatchedStatements", [])]


def _simulation_detail(result: Mapping[str, Any]) -> str:
    notes = []
    decision = result.get("EvalDecision")
    if decision == "explicitDeny":
        notes.append("denied by " + (", ".join(_sources(result)) or "a Deny statement"))
    elif decision == "implicitDeny":
        notes.append("no statement allows it")
    elif decision == "allowed":
        notes.append("by " + (", ".join(_sources(result)) or "the role's policies"))
    missing = result.get("MissingContextValues") or []
    if missing:
        notes.append("the simulation lacked " + ", ".join(missing))
    organizations = result.get("OrganizationsDecisionDetail") or {}
    if organizations.get("AllowedByOrganizations") is False:
        notes.append("an organization SCP denies it")
    boundary = result.get("PermissionsBoundaryDecisionDetail") or {}
    if boundary.get("AllowedByPermissionsBoundary") is False:
        notes.append("the permissions boundary denies it")
    return " (" + "; ".join(notes) + ")" if notes else ""


# --- the signing secret ---------------------------------------------------------------


def check_secret_policy(
    response: Mapping[str, Any], function_roles: Mapping[str, str], account: str
) -> CheckResult:
    """secretsmanager:GetResourcePolicy: a Deny for everyone but the sign function's role
    (admins and the account's root included), which it must not deny."""
    secret_arn = str(response.get("ARN", ""))
    subject = str(response.get("Name") or secret_arn)
    raw = response.get("ResourcePolicy")
    if not raw:
        return CheckResult(
            "signing secret",
            subject,
            False,
            "it has no resource policy: any principal of the account whose identity policy "
            "allows secretsmanager:GetSecretValue can read the key",
        )
    try:
        policy = Policy(f"resource policy of {subject}", policy_document(raw))
        anyone = assumed_identity("the caller")
        partition = secret_arn.split(":")[1] if secret_arn.count(":") >= 5 else "aws"
        strangers = {
            "an administrator": f"arn:{partition}:iam::{account}:role/Administrator",
            "the account's root": f"arn:{partition}:iam::{account}:root",
            **{f"the {name} function": arn for name, arn in function_roles.items()},
        }
        readable = []
        for who, arn in strangers.items():
            request = Request(
                Principal.from_arn(arn),
                "secretsmanager:GetSecretValue",
                secret_arn or "*",
                account,
                {"aws:SecureTransport": True},
            )
            if evaluate(request, [anyone], policy).allowed:
                readable.append(who)
    except (PolicyError, ValueError) as exc:
        return CheckResult("signing secret", subject, False, f"cannot evaluate its policy: {exc}")
    sign = "the sign function"
    wrong = [who for who in readable if who != sign]
    if sign not in readable:
        return CheckResult(
            "signing secret", subject, False, "its resource policy denies the sign function too"
        )
    if wrong:
        return CheckResult(
            "signing secret",
            subject,
            False,
            "its resource policy does not deny " + ", ".join(wrong) + " (only sign may read it)",
        )
    others = ", ".join(who for who in strangers if who != sign)
    return CheckResult(
        "signing secret", subject, True, f"readable by the sign function only; denied to {others}"
    )


# --- the alarm topic ------------------------------------------------------------------


def check_alarm_subscriptions(
    topic_arn: str, subscriptions: Iterable[Mapping[str, Any]]
) -> CheckResult:
    """sns:ListSubscriptionsByTopic: at least one confirmed subscription (an unconfirmed
    one's SubscriptionArn is ``PendingConfirmation``)."""
    confirmed: list[str] = []
    pending: list[str] = []
    for s in subscriptions:
        arn = str(s.get("SubscriptionArn", ""))
        (confirmed if arn.startswith("arn:") else pending).append(str(s.get("Protocol", "?")))
    subject = topic_arn.rsplit(":", 1)[-1]
    if confirmed:
        extra = f"; {len(pending)} pending confirmation" if pending else ""
        kinds = ", ".join(sorted(set(confirmed)))
        return CheckResult(
            "alarm topic", subject, True, f"{len(confirmed)} confirmed ({kinds}){extra}"
        )
    if pending:
        return CheckResult(
            "alarm topic",
            subject,
            False,
            f"{len(pending)} subscription(s), none confirmed: nobody receives the alarms until "
            "the confirmation e-mail's link is followed",
        )
    return CheckResult("alarm topic", subject, False, "no subscription: nobody receives the alarms")


# --- the window timer -----------------------------------------------------------------

_ELECTION_KEY = re.compile(r"ELECTION#([A-Z0-9_]+)")


def check_window_timer(response: Mapping[str, Any]) -> CheckResult:
    """states:DescribeStateMachine: the timer exists and is active."""
    name = str(response.get("name") or response.get("stateMachineArn", ""))
    status = str(response.get("status", ""))
    if status != "ACTIVE":
        return CheckResult("window timer", name, False, f"its status is {status or 'unknown'}")
    election = timer_election(response)
    return CheckResult("window timer", name, True, f"active, for {election or '?'}")


def check_window_timer_started(
    state_machine: str, executions: Sequence[Mapping[str, Any]]
) -> CheckResult:
    """states:ListExecutions (RUNNING): the timer was started, so the window will open and
    close; an active state machine nobody started publishes nothing."""
    name = state_machine.rsplit(":", 1)[-1]
    if not executions:
        return CheckResult(
            "window timer started",
            name,
            False,
            "no execution running: nothing opens the window; start it with "
            "`difusion window start --state-machine <WindowTimerArn>`",
        )
    started = ", ".join(str(e.get("name", "?")) for e in executions)
    return CheckResult("window timer started", name, True, f"running: {started}")


def timer_election(response: Mapping[str, Any]) -> str:
    """The election the timer's definition opens and closes (its ledger partition)."""
    match = _ELECTION_KEY.search(str(response.get("definition", "")))
    return match.group(1) if match else ""


# --- the difusores' delivery roles, from their own reports ----------------------------


def check_difusor_report(
    difusor: Difusor, reports: Mapping[str, Sequence[CheckResult]]
) -> list[CheckResult]:
    """Whether the institute's roles can assume ``difusor``'s delivery role with the
    registered external id. Its trust policy lives in the difusor's account, which the
    institute cannot read: the answer comes from difusor mode's report (``--json``), run
    there, matched by the role's ARN and the external id's tag."""
    subject = f"{difusor.difusor_id} ({difusor.role_arn})"
    for source, lines in reports.items():
        trust = [
            r for r in lines if r.check == DELIVERY_ROLE_TRUST and r.subject == difusor.role_arn
        ]
        if not trust:
            continue
        failed = [r for r in lines if not r.ok]
        summary = CheckResult(
            "difusor preflight",
            difusor.difusor_id,
            not failed,
            f"{len(lines) - len(failed)} of {len(lines)} ✓ in {source}"
            + (": ✗ " + "; ".join(f"{r.check} ({r.subject})" for r in failed) if failed else ""),
        )
        line = trust[0]
        if external_id_tag(difusor.external_id) not in line.reason:
            return [
                CheckResult(
                    DELIVERY_ROLE_TRUST,
                    subject,
                    False,
                    f"{source} checked another external id than the registry holds: "
                    "re-register the difusor from its outputs, or ask which one it deployed",
                ),
                summary,
            ]
        return [
            CheckResult(DELIVERY_ROLE_TRUST, subject, line.ok, f"{source}: {line.reason}"),
            summary,
        ]
    return [
        CheckResult(
            DELIVERY_ROLE_TRUST,
            subject,
            False,
            "not checked: its trust policy is in the difusor's account. Have it run "
            "`difusion preflight --difusor-outputs difusor-outputs.json --institute-account "
            "ACCOUNT --json > report.json` and pass that report with --difusor-report",
        )
    ]
