"""A second opinion on every IAM decision: the npm package ``@cloud-copilot/iam-simulate``
(pinned in package.json, installed by ``make test``), driven by ``simulate.mjs``.

:class:`OracleRequest` is one request as the project's evaluator saw it, in the form the
driver reads; :func:`ask_oracle` decides many in one Node process, :class:`Oracle` keeps one
process open and asks one at a time (for tests that decide a request and then assert on it).
:func:`verdict_of` gives the project's decision in the oracle's three words.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from difusion.local.iam import Decision, Policy, Request

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("simulate.mjs")
PACKAGE = ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate" / "package.json"

ALLOWED, EXPLICIT, IMPLICIT = "Allowed", "ExplicitlyDenied", "ImplicitlyDenied"


class OracleMissing(RuntimeError):
    """The npm package is not installed; never a reason to skip."""


def require_oracle() -> None:
    if not PACKAGE.is_file():
        raise OracleMissing(
            f"{PACKAGE.parent} is not installed: `make test` installs it "
            "(npm ci from package-lock.json); or run `npm ci` in the repository's root"
        )


def verdict_of(decision: Decision) -> str:
    """The project's decision as Allowed / ExplicitlyDenied / ImplicitlyDenied."""
    if decision.allowed:
        return ALLOWED
    return EXPLICIT if ": explicit deny in " in decision.reason else IMPLICIT


def _context_value(value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [str(_context_value(v)) for v in value]
    return str(value)


@dataclass(frozen=True)
class OracleRequest:
    """One request: the caller as AWS reports it (a role session's ARN, a user's, or a
    service principal's name), the policies, and the condition keys the call set (the
    driver adds the global ones AWS fills from the caller and the resource)."""

    principal: str
    action: str
    resource: str
    resource_account: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    identity_policies: tuple[Policy, ...] = ()
    resource_policy: Policy | None = None

    @classmethod
    def of(
        cls,
        request: Request,
        identity_policies: Sequence[Policy] = (),
        resource_policy: Policy | None = None,
    ) -> OracleRequest:
        """What the project's ``evaluate(request, identity_policies, resource_policy)``
        was asked. An AWS service acts with no identity policies of its own."""
        principal = request.principal
        return cls(
            principal.label,
            request.action,
            request.resource,
            request.resource_account,
            {key: _context_value(value) for key, value in request.context.items()},
            () if principal.is_service else tuple(identity_policies),
            resource_policy,
        )

    def condition_keys(self) -> set[str]:
        """The condition keys (lower case) any statement of the policies reads."""
        keys = set()
        policies = [*self.identity_policies, *filter(None, [self.resource_policy])]
        for policy in policies:
            statements = policy.document.get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                for block in statement.get("Condition", {}).values():
                    keys.update(key.lower() for key in block)
        return keys

    def as_json(self, ident: str) -> dict[str, Any]:
        return {
            "id": ident,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "resourceAccount": self.resource_account,
            "context": dict(self.context),
            "identityPolicies": [
                {"name": p.name, "policy": p.document} for p in self.identity_policies
            ],
            "resourcePolicy": self.resource_policy.document if self.resource_policy else None,
        }


@dataclass(frozen=True)
class OracleAnswer:
    result: str  # Allowed, ExplicitlyDenied, ImplicitlyDenied, or "error" (input refused)
    errors: Mapping[str, Any] | None = None
    ignored_context_keys: tuple[str, ...] = ()  # dropped: the decision did not see them
    restored_context_keys: tuple[str, ...] = ()  # dropped by its key filter, put back

    @classmethod
    def from_json(cls, line: str) -> OracleAnswer:
        answer = json.loads(line)
        return cls(
            answer["result"],
            answer.get("errors"),
            tuple(answer.get("ignoredContextKeys", ())),
            tuple(answer.get("restoredContextKeys", ())),
        )


Example = tuple[Request, Sequence[Policy], Policy | None]


@dataclass(frozen=True)
class KnownDisagreement:
    """Where the oracle is wrong about AWS, or does not model it, by AWS's own page:
    requests it ``applies`` to may disagree exactly so (``ours`` against ``oracle``)."""

    name: str
    ours: str
    oracle: str
    why: str  # the explanation, naming AWS's page (title and URL)
    applies: Callable[[OracleRequest], bool]
    example: Example | None = None  # a request it applies to, to prove it still holds


def disagreement(
    request: OracleRequest, ours: str, answer: OracleAnswer, known: Sequence[KnownDisagreement]
) -> str | None:
    """None if the verdicts agree, or differ exactly as a listed disagreement says; else
    what is wrong. An answer given without a condition key the policies read is wrong too:
    the oracle drops the keys it believes the action's requests never carry."""
    dropped = {key.lower() for key in answer.ignored_context_keys} & request.condition_keys()
    if dropped:
        return f"iam-simulate dropped {sorted(dropped)}, which a policy's condition reads"
    entry = next((k for k in known if k.applies(request)), None)
    if entry is None:
        if answer.result == ours:
            return None
        errors = f" ({answer.errors})" if answer.errors else ""
        return f"iam-simulate says {answer.result}{errors}, ours {ours}"
    if (ours, answer.result) == (entry.ours, entry.oracle):
        return None
    return (
        f"listed disagreement {entry.name!r} no longer holds (ours {ours}, iam-simulate "
        f"{answer.result}, listed {entry.ours} against {entry.oracle}): fix or remove the entry"
    )


def _command() -> list[str]:
    require_oracle()
    return ["node", str(DRIVER)]


def ask_oracle(requests: Iterable[OracleRequest]) -> list[OracleAnswer]:
    """The oracle's answer to each request, in order, from one Node process."""
    lines = [json.dumps(r.as_json(str(i))) for i, r in enumerate(requests)]
    if not lines:
        return []
    done = subprocess.run(
        _command(), input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{DRIVER.name} exited {done.returncode}: {done.stderr}")
    answers = [OracleAnswer.from_json(line) for line in done.stdout.splitlines() if line]
    if len(answers) != len(lines):
        raise RuntimeError(f"{DRIVER.name} answered {len(answers)} of {len(lines)} requests")
    return answers


class Oracle:
    """One Node process kept open; :meth:`ask` one request at a time. Use with ``with``."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Oracle:
        self._process = subprocess.Popen(
            _command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        self._pipe(self._process.stdin).close()
        self._process.wait(timeout=30)
        self._pipe(self._process.stdout).close()

    @staticmethod
    def _pipe(stream: IO[str] | None) -> IO[str]:
        assert stream is not None
        return stream

    def ask(self, request: OracleRequest) -> OracleAnswer:
        assert self._process is not None, "use Oracle with `with`"
        self._pipe(self._process.stdin).write(json.dumps(request.as_json("1")) + "\n")
        self._pipe(self._process.stdin).flush()
        line = self._pipe(self._process.stdout).readline()
        if not line:
            raise RuntimeError(f"{DRIVER.name} exited: {self._process.wait()}")
        return OracleAnswer.from_json(line)
