"""Run the functions' AWS calls under the synthesized templates' IAM policies.

moto enforces no IAM, so a missing grant would pass every test and fail on AWS. Installed
for a test, :class:`TemplateEnforcer` intercepts every botocore call made in this process,
works out which role makes it, and lets it through only if the templates' policies allow
each permission it needs (``operations.required_permissions``), as ``evaluate`` decides:

- the role's identity policies, and the resource's own policy where it has one: a
  difusor's site bucket policy (cross-account: both must allow), a role's trust policy for
  ``sts:AssumeRole`` (with the call's external id), the secret's resource policy, a queue's
  policy; and for ``GetSecretValue`` on a secret under a customer-managed key, the
  ``kms:Decrypt`` Secrets Manager makes on the caller's behalf, under the key's policy.

Who calls: the function named by ``dispatcher.current_function`` on the calling thread (the
dispatcher sets it around each poll: Lambda's event source mapping receives and deletes
with the function's role too); on other threads (a function's worker pools) the function
that was running when the client was created; and for a client built from credentials a
function got from ``AssumeRole``, that assumed role. A call with none of these is the
test's or the provisioning's own, and is not checked.

A denied call raises :class:`TemplateDenied`, an ``AccessDenied`` ``ClientError`` as AWS
would answer, so the code under test reacts as it would there; every decision is kept in
:attr:`TemplateEnforcer.checks` for the test to assert on or print, and, given a
``DecisionRecorder``, each request as the evaluator saw it is written out too (to hold
against an independent evaluator: ``tests/iam_oracle``).
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from botocore.client import BaseClient
from botocore.exceptions import ClientError
from botocore.session import Session as BotocoreSession

from difusion.local.dispatcher import current_function
from difusion.local.iam.evaluate import ContextValue, Policy, Principal, Request, evaluate
from difusion.local.iam.operations import Permission, UnknownOperation, required_permissions
from difusion.local.iam.record import DecisionRecorder
from difusion.local.iam.templates import RolePolicies, StackPolicies

# moto listens on plain HTTP; on AWS every call the SDK makes is HTTPS, so the stacks'
# enforce-SSL deny statements never apply to them.
DEFAULT_CONTEXT: Mapping[str, ContextValue] = {"aws:SecureTransport": True}

# The error code each service answers a denied call with.
_DENIED_CODES = {"dynamodb": "AccessDeniedException", "secretsmanager": "AccessDeniedException"}


@dataclass(frozen=True)
class Check:
    """One permission one call needed, and the verdict."""

    function: str  # the function on whose behalf it ran
    principal: str  # the role's ARN
    call: str  # "s3.CopyObject"
    action: str
    resource: str
    allowed: bool
    reason: str
    context: Mapping[str, str]  # what the call itself set (sts:ExternalId, kms:ViaService…)

    @property
    def message(self) -> str:
        verdict = "may" if self.allowed else "may not"
        return (
            f"role {self.principal} ({self.function}) {verdict} {self.action} on "
            f"{self.resource} [{self.call}]: {self.reason}"
        )


class TemplateDenied(ClientError):
    """A call the templates' policies do not allow, answered as AWS would."""

    def __init__(self, check: Check, service: str, operation: str) -> None:
        code = _DENIED_CODES.get(service, "AccessDenied")
        super().__init__(
            {
                "Error": {"Code": code, "Message": check.message},
                "ResponseMetadata": {"HTTPStatusCode": 400 if "Exception" in code else 403},
            },
            operation,
        )
        self.check = check


@dataclass(frozen=True)
class _Caller:
    function: str
    principal: Principal
    assumed: bool = False


class TemplateEnforcer:
    """Checks every function call against ``stacks``; install for a test with ``with``."""

    _active: ClassVar[TemplateEnforcer | None] = None

    def __init__(
        self,
        stacks: Sequence[StackPolicies],
        context: Mapping[str, ContextValue] = DEFAULT_CONTEXT,
        recorder: DecisionRecorder | None = None,
    ) -> None:
        self._context = dict(context)
        self._recorder = recorder
        self._roles: dict[str, RolePolicies] = {}
        self._functions: dict[str, str] = {}
        self._buckets: dict[str, tuple[str, Policy | None]] = {}
        self._keys: dict[str, Policy] = {}
        self._secrets: dict[str, tuple[Policy | None, str | None]] = {}
        self._queues: dict[str, Policy] = {}
        for stack in stacks:
            self._roles.update(stack.roles)
            self._functions.update(stack.functions)
            self._buckets.update({b: (stack.account, p) for b, p in stack.buckets.items()})
            self._keys.update(stack.keys)
            self._secrets.update({a: (s.policy, s.key_arn) for a, s in stack.secrets.items()})
            self._queues.update(stack.queues)
        self.checks: list[Check] = []
        self.unchecked: Counter[str] = Counter()  # calls with no function: the test's own
        self._lock = threading.Lock()
        self._assumed: dict[str, _Caller] = {}  # access key id -> the role it is
        self._created_by: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._undo: list[Callable[[], None]] = []

    # --- installing --------------------------------------------------------------------

    def __enter__(self) -> TemplateEnforcer:
        self.install()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.uninstall()

    def install(self) -> None:
        if TemplateEnforcer._active is not None:
            raise RuntimeError("another TemplateEnforcer is installed")
        enforcer = self
        make_api_call = BaseClient._make_api_call
        create_client = BotocoreSession.create_client

        def checked_call(client: Any, operation_name: str, api_params: Any) -> Any:
            caller = enforcer._check(client, operation_name, api_params)
            response = make_api_call(client, operation_name, api_params)
            if caller is not None:
                enforcer._remember_credentials(caller, operation_name, api_params, response)
            return response

        def tagged_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = create_client(session, *args, **kwargs)
            function = current_function.get()
            if function is not None:
                with enforcer._lock:
                    enforcer._created_by[client] = function
            return client

        BaseClient._make_api_call = checked_call
        BotocoreSession.create_client = tagged_client
        self._undo = [
            lambda: setattr(BaseClient, "_make_api_call", make_api_call),
            lambda: setattr(BotocoreSession, "create_client", create_client),
        ]
        TemplateEnforcer._active = self

    def uninstall(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo = []
        if TemplateEnforcer._active is self:
            TemplateEnforcer._active = None

    # --- reading the log ---------------------------------------------------------------

    @property
    def denials(self) -> list[Check]:
        with self._lock:
            return [c for c in self.checks if not c.allowed]

    def take_denials(self) -> list[Check]:
        """The denials so far, forgotten from the log (a test that expects them)."""
        with self._lock:
            denied = [c for c in self.checks if not c.allowed]
            self.checks = [c for c in self.checks if c.allowed]
        return denied

    def assert_all_allowed(self) -> None:
        denied = self.denials
        if denied:
            distinct = list(dict.fromkeys(c.message for c in denied))
            raise AssertionError(
                f"{len(denied)} call(s) the templates do not allow:\n  " + "\n  ".join(distinct)
            )

    def report(self) -> str:
        """Every decision, counted by function, call, action and verdict; the denials in
        full; and the calls no function made (the test's own), counted."""
        with self._lock:
            counts = Counter(
                (c.function, c.call, c.action, "allowed" if c.allowed else "DENIED")
                for c in self.checks
            )
            denied = list(dict.fromkeys(c.message for c in self.checks if not c.allowed))
            unchecked = sorted(self.unchecked.items())
        lines = [
            f"{n:6d}  {function:30s} {call:34s} {action:32s} {verdict}"
            for (function, call, action, verdict), n in sorted(counts.items())
        ]
        lines += denied
        lines.append("not checked (no function): " + ", ".join(f"{c} x{n}" for c, n in unchecked))
        return "\n".join(lines)

    # --- deciding ----------------------------------------------------------------------

    def _caller(self, client: Any) -> _Caller | None:
        credentials = client._get_credentials()
        access_key = getattr(credentials, "access_key", None) if credentials else None
        with self._lock:
            if access_key in self._assumed:
                return self._assumed[access_key]
            function = current_function.get() or self._created_by.get(client)
        if function is None:
            return None
        if function not in self._functions:
            raise LookupError(f"function {function!r} is in none of the templates' stacks")
        return _Caller(function, Principal.role(self._functions[function], function))

    def _check(self, client: Any, operation: str, params: Mapping[str, Any]) -> _Caller | None:
        service = client.meta.service_model.service_name
        call = f"{service}.{operation}"
        caller = self._caller(client)
        if caller is None:
            with self._lock:
                self.unchecked[call] += 1
            return None
        region = client.meta.region_name
        try:
            permissions = required_permissions(
                service, operation, params, region, caller.principal.account, self._secret_arn
            )
        except UnknownOperation as exc:
            self._record(self._verdict(caller, call, "?", "?", False, str(exc)))
            raise
        checks = []
        for permission in permissions:
            checks.append(self._decide(caller, call, permission))
            if permission.kind == "secret":
                checks.extend(self._decide(caller, call, p) for p in self._implied_kms(permission))
        for check in checks:
            self._record(check)
        denied = next((c for c in checks if not c.allowed), None)
        if denied is not None:
            raise TemplateDenied(denied, service, operation)
        return caller

    def _implied_kms(self, permission: Permission) -> list[Permission]:
        """Secrets Manager decrypts a secret under a customer-managed key with the caller's
        permissions: kms:Decrypt, via the service, with the secret's ARN as context."""
        _, key_arn = self._secrets.get(permission.resource, (None, None))
        if key_arn is None:
            return []
        region = permission.resource.split(":")[3]
        context = {
            "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": permission.resource,
        }
        return [Permission("kms:Decrypt", key_arn, "key", context)]

    def _secret_arn(self, name: str) -> str:
        for arn in self._secrets:
            # arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX
            if arn.split(":secret:", 1)[-1].rsplit("-", 1)[0] == name:
                return arn
        return f"arn:aws:secretsmanager:unknown:000000000000:secret:{name}"

    def _decide(self, caller: _Caller, call: str, permission: Permission) -> Check:
        def verdict(allowed: bool, reason: str) -> Check:
            check = self._verdict(
                caller, call, permission.action, permission.resource, allowed, reason
            )
            return replace(check, context=dict(permission.context))

        role = self._roles.get(caller.principal.arn)
        if role is None:
            return verdict(False, "the role is in none of the templates")
        resource_account, resource_policy, unknown = self._resource_side(permission)
        if unknown:
            return verdict(False, unknown)
        request = Request(
            caller.principal,
            permission.action,
            permission.resource,
            resource_account,
            {**self._context, **permission.context},
        )
        decision = evaluate(request, role.identity, resource_policy)
        if self._recorder is not None:
            self._recorder.record(request, role.identity, resource_policy, decision)
        prefix = f"{caller.principal.label} -> {permission.action} on {permission.resource}: "
        return verdict(decision.allowed, decision.reason.removeprefix(prefix))

    def _resource_side(self, permission: Permission) -> tuple[str, Policy | None, str]:
        """The resource's account, its own policy, and why it can't be told (if so)."""
        if permission.kind in ("object", "bucket"):
            bucket = permission.resource.split(":::", 1)[1].split("/", 1)[0]
            if bucket not in self._buckets:
                return "", None, f"bucket {bucket} is in none of the templates (whose is it?)"
            account, policy = self._buckets[bucket]
            return account, policy, ""
        account = permission.resource.split(":")[4]
        if permission.kind == "role":
            role = self._roles.get(permission.resource)
            return account, role.trust if role else None, ""
        if permission.kind == "secret":
            return account, self._secrets.get(permission.resource, (None, None))[0], ""
        if permission.kind == "key":
            return account, self._keys.get(permission.resource), ""
        if permission.kind == "queue":
            return account, self._queues.get(permission.resource), ""
        return account, None, ""  # tables, indexes, distributions: no resource policies

    def _verdict(
        self, caller: _Caller, call: str, action: str, resource: str, allowed: bool, reason: str
    ) -> Check:
        function = f"assumed by {caller.function}" if caller.assumed else caller.function
        return Check(function, caller.principal.arn, call, action, resource, allowed, reason, {})

    def _record(self, check: Check) -> None:
        with self._lock:
            self.checks.append(check)

    def _remember_credentials(
        self, caller: _Caller, operation: str, params: Mapping[str, Any], response: Any
    ) -> None:
        """Clients built from credentials a function assumed act as the assumed role."""
        if operation != "AssumeRole" or not isinstance(response, Mapping):
            return
        access_key = response.get("Credentials", {}).get("AccessKeyId")
        if access_key:
            principal = Principal.role(str(params["RoleArn"]), str(params["RoleSessionName"]))
            with self._lock:
                self._assumed[access_key] = _Caller(caller.function, principal, assumed=True)
