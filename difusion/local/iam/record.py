"""Keep every decision the evaluator makes in a JSON-lines file, to hold against another
evaluator afterwards (``tests/iam_oracle``).

Each policy is written once, on a ``policy`` line with a number; each ``decision`` line
names its policies by number, so a night of thousands of decisions under the same few
policies stays small. :func:`read_decisions` gives them back as the evaluator saw them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from difusion.local.iam.evaluate import Decision, Policy, Principal, Request


@dataclass(frozen=True)
class RecordedDecision:
    """One request, the policies it was decided under, and the verdict."""

    request: Request
    identity_policies: tuple[Policy, ...]
    resource_policy: Policy | None
    decision: Decision


class DecisionRecorder:
    """Appends decisions to ``path`` (truncated when opened); safe across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        # id() of a policy object -> (the object, kept alive so the id is not reused; number)
        self._numbers: dict[int, tuple[Policy, int]] = {}
        self.count = 0

    def record(
        self,
        request: Request,
        identity_policies: Sequence[Policy],
        resource_policy: Policy | None,
        decision: Decision,
    ) -> None:
        with self._lock:
            identity = [self._number(p) for p in identity_policies]
            resource = self._number(resource_policy) if resource_policy is not None else None
            line = {
                "kind": "decision",
                "principal": request.principal.arn,
                "session": request.principal.session_name,
                "action": request.action,
                "resource": request.resource,
                "resource_account": request.resource_account,
                "context": dict(request.context),
                "identity": identity,
                "resource_policy": resource,
                "allowed": decision.allowed,
                "reason": decision.reason,
            }
            self._file.write(json.dumps(line) + "\n")
            self.count += 1

    def _number(self, policy: Policy) -> int:
        known = self._numbers.get(id(policy))
        if known is not None:
            return known[1]
        number = len(self._numbers)
        self._numbers[id(policy)] = (policy, number)
        line = {"kind": "policy", "number": number, "name": policy.name}
        self._file.write(json.dumps({**line, "document": policy.document}) + "\n")
        return number

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_decisions(path: Path) -> Iterator[RecordedDecision]:
    """The decisions a :class:`DecisionRecorder` wrote, in order."""
    policies: dict[int, Policy] = {}
    with path.open(encoding="utf-8") as lines:
        for text in lines:
            line: dict[str, Any] = json.loads(text)
            if line["kind"] == "policy":
                policies[line["number"]] = Policy(line["name"], line["document"])
                continue
            principal = Principal(line["principal"], line["session"])
            request = Request(
                principal,
                line["action"],
                line["resource"],
                line["resource_account"],
                line["context"],
            )
            resource = line["resource_policy"]
            yield RecordedDecision(
                request,
                tuple(policies[n] for n in line["identity"]),
                policies[resource] if resource is not None else None,
                Decision(line["allowed"], line["reason"]),
            )
