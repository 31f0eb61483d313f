"""Decide whether IAM would allow one request, from the policies in synthesized templates.

Reuse first: moto 5.2.5's checker (moto/iam/access_control.py) reads identity policies only,
matches with an unescaped regex, case-sensitive actions and no ``?``, knows StringEquals in
trust policies alone (an unmet Allow condition there counts as a Deny), and has no resource
policies or cross-account logic. PyPI has no maintained evaluator: policyuniverse, parliament,
cloudsplaining and policy-sentry parse, lint or write policies; principalmapper simulates but
was last released in 2022. So this one covers the statement forms CDK emits, and raises
PolicyError on any other form rather than guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ContextValue = str | bool | int | float | Sequence[str]


class PolicyError(ValueError):
    """A policy uses a form this evaluator does not model (or is malformed)."""


@dataclass(frozen=True)
class Policy:
    """One policy document, with intrinsics already resolved to strings.

    ``name`` appears in every reason, so make it say whose it is, e.g.
    ``"identity policy IngestRoleDefaultPolicy"`` or ``"bucket policy of prep-origin"``.
    """

    name: str
    document: Mapping[str, Any]


@dataclass(frozen=True)
class Principal:
    """Who signs the request: an IAM role (optionally one of its sessions), a user, or an
    AWS service such as ``cloudwatch.amazonaws.com``."""

    arn: str
    session_name: str = ""

    @classmethod
    def role(cls, role_arn: str, session_name: str = "") -> Principal:
        return cls(role_arn, session_name)

    @classmethod
    def service(cls, name: str) -> Principal:
        return cls(name)

    @classmethod
    def from_arn(cls, arn: str) -> Principal:
        """Accepts a role, user or root ARN, or an assumed-role session ARN (whose role ARN
        then has no path: prefer :meth:`role` when the role has one)."""
        match = re.fullmatch(r"arn:([^:]+):sts::(\d{12}):assumed-role/([^/]+)/(.+)", arn)
        if match:
            partition, account, name, session = match.groups()
            return cls(f"arn:{partition}:iam::{account}:role/{name}", session)
        return cls(arn)

    @property
    def is_service(self) -> bool:
        return not self.arn.startswith("arn:")

    @property
    def account(self) -> str:
        return "" if self.is_service else self.arn.split(":")[4]

    @property
    def label(self) -> str:
        """The ARN AWS would report for the caller: the session's, if it is one."""
        if not self.session_name:
            return self.arn
        partition = self.arn.split(":")[1]
        name = self.arn.rsplit("/", 1)[-1]
        return f"arn:{partition}:sts::{self.account}:assumed-role/{name}/{self.session_name}"


@dataclass(frozen=True)
class Request:
    """One authorization question. ``context`` holds condition keys; aws:PrincipalArn,
    aws:PrincipalAccount, aws:ResourceAccount, aws:PrincipalIsAWSService and
    aws:PrincipalServiceName are filled from the principal unless given."""

    principal: Principal
    action: str
    resource: str
    resource_account: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


# --- matching ---------------------------------------------------------------------------


def _no_variables(pattern: str) -> str:
    if "${" in pattern:
        raise PolicyError(f"policy variables are not supported: {pattern!r}")
    return pattern


@lru_cache(maxsize=4096)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = re.escape(_no_variables(pattern)).replace(r"\*", ".*").replace(r"\?", ".")
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


@lru_cache(maxsize=4096)
def _resource_regex(pattern: str) -> re.Pattern[str]:
    # The Resource element: a * that ends an ARN segment may run past colons, any other *
    # stays within its segment (IAM User Guide, "IAM JSON policy elements: Resource").
    parts = []
    for i, char in enumerate(_no_variables(pattern)):
        if char == "*":
            parts.append(".*" if pattern[i + 1 : i + 2] in (":", "") else "[^:]*")
        else:
            parts.append("." if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def _resource_like(pattern: str, arn: str) -> bool:
    return _resource_regex(pattern).fullmatch(arn) is not None


def _arn_like(pattern: str, arn: str) -> bool:
    """ArnLike conditions compare the six ARN segments one by one."""
    if pattern == "*":
        return True
    wanted, actual = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) < 6:
        return _like(pattern, arn)
    return len(actual) == 6 and all(_like(w, a) for w, a in zip(wanted, actual, strict=True))


def _as_list(value: Any) -> list[str]:
    values = value if isinstance(value, list | tuple) else [value]
    return [str(v).lower() if isinstance(v, bool) else str(v) for v in values]


# --- conditions -------------------------------------------------------------------------


def _number_test(test: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def compare(wanted: str, actual: str) -> bool:
        try:
            return test(float(actual), float(wanted))
        except ValueError:
            return False

    return compare


# operator (lower case) -> (does one request value match one policy value, is it negated)
_OPERATORS: dict[str, tuple[Any, bool]] = {
    "stringequals": (lambda w, a: w == a, False),
    "stringnotequals": (lambda w, a: w == a, True),
    "stringequalsignorecase": (lambda w, a: w.lower() == a.lower(), False),
    "stringnotequalsignorecase": (lambda w, a: w.lower() == a.lower(), True),
    "stringlike": (lambda w, a: _like(w, a), False),
    "stringnotlike": (lambda w, a: _like(w, a), True),
    # AWS documents ArnEquals and ArnLike as the same segment-wise wildcard match.
    "arnequals": (_arn_like, False),
    "arnlike": (_arn_like, False),
    "arnnotequals": (_arn_like, True),
    "arnnotlike": (_arn_like, True),
    "bool": (lambda w, a: w.lower() == a.lower(), False),
    "numericequals": (_number_test(lambda a, w: a == w), False),
    "numericnotequals": (_number_test(lambda a, w: a == w), True),
    "numericlessthan": (_number_test(lambda a, w: a < w), False),
    "numericlessthanequals": (_number_test(lambda a, w: a <= w), False),
    "numericgreaterthan": (_number_test(lambda a, w: a > w), False),
    "numericgreaterthanequals": (_number_test(lambda a, w: a >= w), False),
}


def _normalize_context(context: Mapping[str, ContextValue]) -> dict[str, list[str]]:
    return {key.lower(): _as_list(value) for key, value in context.items()}


def conditions_hold(condition: Mapping[str, Any], context: Mapping[str, ContextValue]) -> bool:
    """Whether a statement's ``Condition`` block holds: operators and keys AND, a key's
    values OR (NOR for negated operators). Keys are case-insensitive."""
    return _block_holds(condition, _normalize_context(context))


def _block_holds(condition: Mapping[str, Any], context: dict[str, list[str]]) -> bool:
    return all(
        _condition_holds(operator, key, wanted, context)
        for operator, keys in condition.items()
        for key, wanted in keys.items()
    )


def _condition_holds(operator: str, key: str, wanted: Any, context: dict[str, list[str]]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    qualifier, name = qualifier.lower(), name.lower()
    if qualifier not in ("", "forallvalues", "foranyvalue"):
        raise PolicyError(f"unknown condition qualifier in {operator!r}")
    actual = context.get(key.lower())
    present = bool(actual)
    wanted_values = _as_list(wanted)
    if name == "null":
        # Null "true" means the key must be absent, "false" that it must be present.
        return any((w.lower() == "true") != present for w in wanted_values)
    if_exists = name.endswith("ifexists")
    base = name.removesuffix("ifexists")
    if base not in _OPERATORS:
        raise PolicyError(f"condition operator {operator!r} is not supported")
    matches, negated = _OPERATORS[base]
    if not present:
        if if_exists or qualifier == "forallvalues":
            return True  # ForAllValues over no values is vacuously true, as AWS documents
        if qualifier == "foranyvalue":
            return False
        return negated  # a missing key "is not equal" to anything

    def one(value: str) -> bool:
        hit = any(matches(w, value) for w in wanted_values)
        return not hit if negated else hit

    assert actual is not None
    if qualifier == "forallvalues":
        return all(one(v) for v in actual)
    return any(one(v) for v in actual)


# --- statements -------------------------------------------------------------------------

_DIRECT, _ACCOUNT = "direct", "account"


@dataclass(frozen=True)
class _Statement:
    where: str  # "<policy name> statement <Sid or #n>", for reasons
    effect: str
    body: Mapping[str, Any]


def _statements(policy: Policy) -> Iterator[_Statement]:
    raw = policy.document.get("Statement", [])
    for index, body in enumerate(raw if isinstance(raw, list) else [raw], start=1):
        where = f"{policy.name} statement {body.get('Sid') or f'#{index}'}"
        if body.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"{where}: Effect must be Allow or Deny, not {body.get('Effect')!r}")
        yield _Statement(where, body["Effect"], body)


def _one_of(statement: _Statement, positive: str, negative: str) -> tuple[list[str], bool]:
    if (positive in statement.body) == (negative in statement.body):
        raise PolicyError(f"{statement.where}: needs exactly one of {positive}, {negative}")
    if positive in statement.body:
        return _as_list(statement.body[positive]), False
    return _as_list(statement.body[negative]), True


def _principal_match(element: Any, principal: Principal, where: str) -> str | None:
    """How a Principal element names the caller: directly, through its account (which
    delegates to the account's identity policies), or not at all."""
    if element == "*":
        return _DIRECT
    if not isinstance(element, Mapping):
        raise PolicyError(f"{where}: Principal must be '*' or a mapping")
    found = None
    for kind, values in element.items():
        if kind not in ("AWS", "Service", "Federated", "CanonicalUser"):
            raise PolicyError(f"{where}: principal type {kind!r} is not supported")
        for value in _as_list(values):
            if kind == "Service":
                if principal.is_service and value == principal.arn:
                    return _DIRECT
            elif kind == "AWS" and value == "*":
                return _DIRECT
            elif kind == "AWS" and not principal.is_service:
                if _names_account(value, principal.account):
                    found = _ACCOUNT
                elif _names_identity(value, principal):
                    return _DIRECT
    return found


def _names_account(value: str, account: str) -> bool:
    return value == account or re.fullmatch(rf"arn:[^:]+:iam::{account}:root", value) is not None


def _role_key(arn: str) -> tuple[str, str] | None:
    # Role names are unique within an account whatever their path.
    match = re.fullmatch(r"arn:[^:]+:iam::(\d{12}):role/(?:.*/)?([^/]+)", arn)
    return (match.group(1), match.group(2)) if match else None


def _names_identity(value: str, principal: Principal) -> bool:
    if value in (principal.arn, principal.label):
        return True
    key = _role_key(value)
    return key is not None and key == _role_key(principal.arn)


def _applies(
    statement: _Statement, request: Request, context: dict[str, list[str]], resource_side: bool
) -> str | None:
    """None if the statement doesn't apply; else how its principal matched ("direct" for
    identity policies, which have no Principal)."""
    body = statement.body
    if "NotPrincipal" in body:
        raise PolicyError(f"{statement.where}: NotPrincipal is not supported")
    if resource_side:
        if "Principal" not in body:
            raise PolicyError(f"{statement.where}: a resource policy statement needs Principal")
        how = _principal_match(body["Principal"], request.principal, statement.where)
        if how is None:
            return None
    elif "Principal" in body:
        raise PolicyError(f"{statement.where}: an identity policy has no Principal")
    else:
        how = _DIRECT
    actions, not_action = _one_of(statement, "Action", "NotAction")
    if any(_like(a, request.action, ignore_case=True) for a in actions) == not_action:
        return None
    if "Resource" in body or "NotResource" in body:
        resources, not_resource = _one_of(statement, "Resource", "NotResource")
        if any(_resource_like(r, request.resource) for r in resources) == not_resource:
            return None
    elif not resource_side:
        raise PolicyError(f"{statement.where}: an identity policy statement needs Resource")
    return how if _block_holds(body.get("Condition", {}), context) else None


# --- the decision -----------------------------------------------------------------------

# Resources whose own policy must allow even within the account: KMS keys (their key policy)
# and roles (their trust policy). Naming the account there delegates to identity policies.
_KEY_ACTIONS = re.compile(r"kms:.*", re.IGNORECASE)
_TRUST_ACTIONS = re.compile(r"sts:(AssumeRole\w*|TagSession|SetSourceIdentity)", re.IGNORECASE)


def _request_context(request: Request) -> dict[str, list[str]]:
    principal = request.principal
    defaults: dict[str, ContextValue] = {"aws:PrincipalIsAWSService": principal.is_service}
    if principal.is_service:
        defaults["aws:PrincipalServiceName"] = principal.arn
    else:
        defaults["aws:PrincipalArn"] = principal.arn
        defaults["aws:PrincipalAccount"] = principal.account
    if request.resource_account:
        defaults["aws:ResourceAccount"] = request.resource_account
    return _normalize_context({**defaults, **request.context})


def evaluate(
    request: Request,
    identity_policies: Sequence[Policy] = (),
    resource_policy: Policy | None = None,
) -> Decision:
    """Decide ``request`` as IAM would, given the caller's identity policies and the
    resource's policy (bucket, key, trust, secret or queue policy), if it has one."""
    context = _request_context(request)
    # An AWS service acts with no identity policies of the caller's.
    identity = [] if request.principal.is_service else list(identity_policies)
    resource = [resource_policy] if resource_policy is not None else []
    what = f"{request.principal.label} -> {request.action} on {request.resource}"

    def matching(policies: list[Policy], effect: str, side: bool) -> list[tuple[_Statement, str]]:
        found = []
        for policy in policies:
            for statement in _statements(policy):
                if statement.effect == effect:
                    how = _applies(statement, request, context, side)
                    if how is not None:
                        found.append((statement, how))
        return found

    denies = matching(identity, "Deny", False) + matching(resource, "Deny", True)
    if denies:
        return Decision(False, f"{what}: explicit deny in {denies[0][0].where}")
    identity_allow = [s for s, _ in matching(identity, "Allow", False)]
    resource_allows = matching(resource, "Allow", True)
    direct = [s for s, how in resource_allows if how == _DIRECT]
    via_account = [s for s, how in resource_allows if how == _ACCOUNT]
    same_account = request.principal.account == request.resource_account
    names = ", ".join(p.name for p in identity) or "none given"
    no_identity = f"no identity policy ({names}) allows it"
    if resource_policy is None:
        resource_note = "no resource policy given"
    elif via_account:
        resource_note = f"{resource_policy.name} names only the account"
    else:
        resource_note = f"{resource_policy.name} does not allow it"

    rule = _resource_policy_rule(request)
    if rule is None:  # same account, ordinary resource: either side may allow
        if identity_allow or direct:
            return Decision(True, f"{what}: allowed by {(identity_allow or direct)[0].where}")
        return Decision(False, f"{what}: implicit deny: {no_identity}, and {resource_note}")
    if not resource_allows:
        return Decision(False, f"{what}: {resource_note}; {rule}")
    if direct and (same_account or request.principal.is_service):
        return Decision(True, f"{what}: allowed by {direct[0].where}")
    granted = resource_allows[0][0].where
    if not identity_allow:
        why = "it names only the account" if same_account else "it is cross-account"
        return Decision(False, f"{what}: {granted} allows it, but {why} and {no_identity}")
    return Decision(True, f"{what}: allowed by {granted} and {identity_allow[0].where}")


def _resource_policy_rule(request: Request) -> str | None:
    """Why the resource's own policy must allow this request, if it must."""
    if request.principal.is_service:
        return "an AWS service can only be granted access by a resource policy"
    if _KEY_ACTIONS.fullmatch(request.action):
        return "a KMS key's key policy must allow every use of the key"
    if _TRUST_ACTIONS.fullmatch(request.action):
        return "a role's trust policy must allow the caller"
    if request.principal.account != request.resource_account:
        return "cross-account access needs the resource's policy to allow it too"
    return None
