"""The window timer's definition, executed on a controlled clock.

moto executes the Step Functions definition with its Wait states on the emulator's wall
clock, and writes the wall clock's ``$$.State.EnteredTime``. When the embedded default
runs on a :class:`~difusion.local.clock.ControlledClock`, the timer must open and close
the window when *that* clock reaches the opening and the close. This executes the very
definition deployed on the emulator (read back from its Step Functions) with its waits as
timers on the controlled clock and its times from it. It knows the part of the Amazon
States Language the definition uses — Wait on a timestamp, the DynamoDB ``updateItem``
and SQS ``sendMessage`` integrations, Catch, Succeed and Fail — and refuses a definition
with anything else, so a change to the definition cannot pass here unnoticed. A test holds
its effects to moto's own execution of the same definition.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from difusion.local.clock import Alarm, ControlledClock

# Fields each state type may have here; anything else (Retry, InputPath, ResultSelector,
# Parallel, Choice, ...) is refused rather than ignored.
_FIELDS = {
    "Wait": {"Type", "Comment", "Timestamp", "TimestampPath", "Seconds", "Next", "End"},
    "Task": {"Type", "Comment", "Resource", "Parameters", "ResultPath", "Catch", "Next", "End"},
    "Succeed": {"Type", "Comment"},
    "Fail": {"Type", "Comment", "Error", "Cause"},
}
_INTEGRATIONS = {
    "arn:aws:states:::dynamodb:updateItem": ("DynamoDB", "update_item"),
    "arn:aws:states:::sqs:sendMessage": ("SQS", "send_message"),
}


class UnsupportedDefinition(ValueError):
    """The definition uses something this executor does not know."""


class _TaskFailed(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def entered_time(moment: datetime) -> str:
    """``$$.State.EnteredTime`` as Step Functions writes it: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_definition(definition: dict[str, Any]) -> None:
    """Refuse a definition that uses anything this executor does not execute."""
    states = definition.get("States", {})
    if definition.get("StartAt") not in states:
        raise UnsupportedDefinition("StartAt names no state")
    for name, state in states.items():
        kind = state.get("Type")
        if kind not in _FIELDS:
            raise UnsupportedDefinition(f"{name}: state type {kind!r}")
        extra = set(state) - _FIELDS[kind]
        if extra:
            raise UnsupportedDefinition(f"{name}: {sorted(extra)}")
        if kind == "Task":
            if state["Resource"] not in _INTEGRATIONS:
                raise UnsupportedDefinition(f"{name}: resource {state['Resource']}")
            if state.get("ResultPath", None) is not None:
                raise UnsupportedDefinition(f"{name}: only a null ResultPath")
            for catcher in state.get("Catch", []):
                if catcher.get("ResultPath", None) is not None or catcher["Next"] not in states:
                    raise UnsupportedDefinition(f"{name}: a Catch needs a null ResultPath")
        if kind in ("Wait", "Task") and not state.get("End") and state.get("Next") not in states:
            raise UnsupportedDefinition(f"{name}: Next names no state")


@dataclass
class ClockedExecution:
    """One execution of a state machine's definition whose waits are on ``clock``."""

    definition: dict[str, Any]
    name: str
    input: dict[str, Any]
    clock: ControlledClock
    clients: dict[str, Any]  # "DynamoDB" and "SQS": boto3 clients
    status: str = "RUNNING"  # RUNNING | SUCCEEDED | FAILED | ABORTED
    error: str = ""
    # Every state entered, with the clock's time: what the execution history would show.
    history: list[tuple[str, datetime]] = field(default_factory=list)
    _alarm: Alarm | None = None

    def __post_init__(self) -> None:
        check_definition(self.definition)

    def start(self) -> ClockedExecution:
        """Run from ``StartAt`` until the first wait the clock has not reached yet."""
        self._run(self.definition["StartAt"])
        return self

    def stop(self) -> None:
        """Abort it: a wait still pending never fires (a deployment replaced)."""
        if self._alarm is not None:
            self._alarm.cancel()
        if self.status == "RUNNING":
            self.status = "ABORTED"

    def _run(self, name: str) -> None:
        self._alarm = None
        while self.status == "RUNNING":
            state = self.definition["States"][name]
            entered = self.clock.now()
            self.history.append((name, entered))
            kind = state["Type"]
            if kind == "Succeed":
                self.status = "SUCCEEDED"
                return
            if kind == "Fail":
                self.status, self.error = "FAILED", str(state.get("Error", ""))
                return
            if kind == "Wait":
                until = self._until(state, entered)
                if until > entered:
                    self._alarm = self.clock.call_at(
                        until, functools.partial(self._after_wait, state.get("Next"))
                    )
                    return
            elif kind == "Task":
                try:
                    self._task(state, name, entered)
                except _TaskFailed as failure:
                    catcher = next(
                        (
                            c
                            for c in state.get("Catch", [])
                            if {failure.error, "States.ALL", "States.TaskFailed"}
                            & set(c["ErrorEquals"])
                        ),
                        None,
                    )
                    if catcher is None:
                        self.status, self.error = "FAILED", str(failure)
                        return
                    name = catcher["Next"]
                    continue
            if state.get("End"):
                self.status = "SUCCEEDED"
                return
            name = state["Next"]

    def _after_wait(self, following: str | None) -> None:
        if following is None:
            self.status = "SUCCEEDED"
        else:
            self._run(following)

    def _until(self, state: dict[str, Any], entered: datetime) -> datetime:
        if "Seconds" in state:
            return entered + timedelta(seconds=float(state["Seconds"]))
        text = state["Timestamp"] if "Timestamp" in state else self._path(state["TimestampPath"])
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))

    def _task(self, state: dict[str, Any], name: str, entered: datetime) -> None:
        service, method = _INTEGRATIONS[state["Resource"]]
        context = {
            "Execution": {"Name": self.name, "Input": self.input},
            "State": {"Name": name, "EnteredTime": entered_time(entered)},
        }
        parameters = self._resolve(state.get("Parameters", {}), context)
        if service == "SQS" and not isinstance(parameters.get("MessageBody"), str):
            # Step Functions serializes a JSON message body.
            parameters["MessageBody"] = json.dumps(parameters["MessageBody"])
        call: Callable[..., Any] = getattr(self.clients[service], method)
        try:
            call(**parameters)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            raise _TaskFailed(f"{service}.{code}", str(exc)) from None

    def _resolve(self, value: Any, context: dict[str, Any]) -> Any:
        if isinstance(value, dict):
            return {
                key.removesuffix(".$"): self._path(item, context)
                if key.endswith(".$")
                else self._resolve(item, context)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._resolve(item, context) for item in value]
        return value

    def _path(self, path: str, context: dict[str, Any] | None = None) -> Any:
        """A reference path: ``$.field`` into the input, ``$$.Field`` into the context."""
        if path.startswith("$$."):
            root, parts = context or {}, path[3:].split(".")
        elif path.startswith("$."):
            root, parts = self.input, path[2:].split(".")
        else:
            raise UnsupportedDefinition(f"path {path!r}")
        value: Any = root
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                raise UnsupportedDefinition(f"path {path!r} names nothing")
            value = value[part]
        return value
