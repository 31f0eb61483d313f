"""Every permission the pipeline needs, and the few it must not have: the one table.

Derived from what the code calls (``difusion/adapters`` on behalf of ``difusion/services``,
Powertools in ``lambdas/*/handler.py``, the window timer's definition), with the IAM action
each botocore call needs as ``difusion/local/iam/operations.py`` maps it. When a function
starts calling something new, add it here: preflight then asks IAM about it on the real
deployment before the night, not during it.

``expand`` turns the table into concrete questions for IAM's policy simulator: this role,
these actions, this resource ARN, with these condition keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from difusion.local.iam.operations import queue_arn
from difusion.models import Difusor
from difusion.preflight.outputs import InstituteOutputs

# Resources, by kind. A prefix ("incoming/") stands for any object under it: IAM is asked
# about a sample key there, which the policies' prefix wildcards match like any other.
ORIGIN = "origin"  # an object in the origin bucket; `where` is its key or prefix
ORIGIN_BUCKET = "origin-bucket"  # the origin bucket itself (listing)
TABLE = "table"  # `where`: ledger, registry, idempotency
QUEUE = "queue"  # `where`: ingest, sign, deliveries
SECRET = "secret"  # the signing secret
SECRET_KEY = "secret-key"  # the KMS key that encrypts it (when customer-managed)
SITE_OBJECT = "site-object"  # an object in each registered difusor's site bucket
SITE_BUCKET = "site-bucket"  # each registered difusor's site bucket (listing)
DELIVERY_ROLE = "delivery-role"  # each registered difusor's delivery role
ANY = "any"  # actions without resource-level permissions

TIMER = "window timer"  # the state machine's role, which is not a function's

_LEDGER_WRITE = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
# Powertools idempotency's DynamoDB persistence layer.
_IDEMPOTENCY = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
# Lambda's SQS event source mapping polls with the function's role; the handler itself makes
# a failed message visible again sooner (adapters/queues.FailedMessages).
_CONSUME = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)
_TRACING = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
SAMPLE_KEY = "preflight-sample"


@dataclass(frozen=True)
class Need:
    """One line of the table: a function does ``actions`` on a kind of resource."""

    function: str  # topology's function name, or TIMER
    actions: tuple[str, ...]
    kind: str
    where: str = ""  # the object key, or which table or queue
    why: str = ""
    allowed: bool = True  # False: the function must NOT be allowed this


NEEDS: tuple[Need, ...] = (
    # --- ingest (services/ingest.py) -------------------------------------------------------
    Need("ingest", _CONSUME, QUEUE, "ingest", "its SQS event source; retries sooner"),
    Need(
        "ingest",
        ("s3:GetObject", "s3:GetObjectVersion"),
        ORIGIN,
        "incoming/",
        "reads the package, by the version the event names (OriginStore.download)",
    ),
    Need("ingest", ("s3:GetObject",), ORIGIN, "manifests/", "the previous manifest's contents"),
    Need(
        "ingest",
        ("s3:PutObject", "s3:AbortMultipartUpload"),
        ORIGIN,
        "objects/sha256/",
        "stages content (multipart for large files, aborted on failure)",
    ),
    Need("ingest", ("s3:PutObject",), ORIGIN, "drafts/", "the draft"),
    Need("ingest", _LEDGER_WRITE, TABLE, "ledger", "received, validated, rejected; the head"),
    Need("ingest", _IDEMPOTENCY, TABLE, "idempotency", "Powertools idempotency"),
    Need("ingest", ("sqs:SendMessage",), QUEUE, "sign", "hands the draft to sign"),
    Need("ingest", _TRACING, ANY, "", "X-Ray (active tracing)"),
    # --- sign (services/sign.py) -----------------------------------------------------------
    Need("sign", _CONSUME, QUEUE, "sign", "its SQS event source; retries sooner"),
    Need("sign", ("s3:GetObject",), ORIGIN, "drafts/", "reads the draft"),
    Need("sign", ("s3:PutObject",), ORIGIN, "manifests/", "the manifest and its signature"),
    Need("sign", ("s3:PutObject",), ORIGIN, "keys/prep.pub", "the public key"),
    Need("sign", ("secretsmanager:GetSecretValue",), SECRET, "", "the signing key"),
    Need("sign", ("kms:Decrypt",), SECRET_KEY, "", "Secrets Manager decrypts it for sign"),
    Need("sign", _LEDGER_WRITE, TABLE, "ledger", "accepts (transaction), holds, rejects"),
    Need("sign", ("dynamodb:Scan",), TABLE, "registry", "the active difusores"),
    Need("sign", _IDEMPOTENCY, TABLE, "idempotency", "Powertools idempotency"),
    Need("sign", ("sqs:SendMessage",), QUEUE, "deliveries", "one delivery per difusor"),
    Need("sign", _TRACING, ANY, "", "X-Ray (active tracing)"),
    # --- replicate, as the publisher role (services/replicate.py, adapters/difusor_site.py) -
    Need("replicate", _CONSUME, QUEUE, "deliveries", "its SQS event source; retries sooner"),
    Need("replicate", ("s3:GetObject",), ORIGIN, "objects/sha256/", "copy sources: content"),
    Need("replicate", ("s3:GetObject",), ORIGIN, "manifests/", "the manifest it delivers"),
    Need("replicate", ("s3:GetObject",), ORIGIN, "keys/prep.pub", "the key it verifies with"),
    Need("replicate", ("s3:ListBucket",), ORIGIN_BUCKET, "manifests/", "the chain's history"),
    Need("replicate", ("dynamodb:GetItem", "dynamodb:UpdateItem"), TABLE, "ledger", "deliveries"),
    Need("replicate", ("dynamodb:GetItem",), TABLE, "registry", "the difusor it delivers to"),
    Need("replicate", _IDEMPOTENCY, TABLE, "idempotency", "Powertools idempotency"),
    Need(
        "replicate",
        ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"),
        SITE_OBJECT,
        "",
        "server-side copies and removals in the difusor's bucket",
    ),
    Need("replicate", ("s3:ListBucket",), SITE_BUCKET, "", "a full redelivery's listing"),
    Need("replicate", ("sts:AssumeRole",), DELIVERY_ROLE, "", "to switch its site's version"),
    Need("replicate", _TRACING, ANY, "", "X-Ray (active tracing)"),
    # --- monitor (services/continuity.py) --------------------------------------------------
    Need("monitor", ("s3:GetObject",), ORIGIN, "keys/prep.pub", "the key sites verify with"),
    Need("monitor", ("s3:GetObject",), ORIGIN, "manifests/", "reads the version it retains"),
    Need("monitor", ("s3:PutObject",), ORIGIN, "public/", "the public list of difusores"),
    Need(
        "monitor",
        ("s3:PutObject",),
        ORIGIN,
        "closing/",
        "the closing record",
    ),
    *(
        Need(
            "monitor",
            ("s3:PutObjectRetention",),
            ORIGIN,
            key,
            "Object Lock on the final publication and the closing record",
        )
        for key in ("incoming/", "manifests/", "keys/prep.pub", "closing/")
    ),
    Need(
        "monitor",
        ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"),
        TABLE,
        "ledger",
        "checks, incidents, the closing record",
    ),
    Need("monitor", ("dynamodb:Scan", "dynamodb:UpdateItem"), TABLE, "registry", "suspensions"),
    Need("monitor", ("sqs:SendMessage",), QUEUE, "deliveries", "repairs and redeliveries"),
    Need(
        "monitor",
        ("s3:PutObject", "s3:DeleteObject"),
        SITE_OBJECT,
        "",
        "the suspension notice",
    ),
    Need("monitor", ("sts:AssumeRole",), DELIVERY_ROLE, "", "to point its site to the notice"),
    Need("monitor", _TRACING, ANY, "", "X-Ray (active tracing)"),
    # --- the window timer (stacks/institute/window_timer.asl.json) ------------------------
    Need(TIMER, ("dynamodb:UpdateItem",), TABLE, "ledger", "opens and closes the window"),
    Need(TIMER, ("sqs:SendMessage",), QUEUE, "sign", "the release at the opening"),
    # --- what only sign may do -------------------------------------------------------------
    *(
        Need(
            function,
            ("secretsmanager:GetSecretValue",),
            SECRET,
            "",
            "only the sign function reads the signing key",
            allowed=False,
        )
        for function in ("ingest", "replicate", "monitor")
    ),
)


@dataclass(frozen=True)
class Deployment:
    """What the table is expanded against: the institute's outputs, the registered
    difusores, and what only the account itself can tell (the secret's ARN, its key, the
    timer's role and election)."""

    outputs: InstituteOutputs
    difusores: tuple[Difusor, ...]
    secret_arn: str
    secret_key_arn: str = ""  # empty: AWS's managed key, which needs no grant
    timer_role_arn: str = ""  # empty: the timer was not found
    election: str = ""

    def role_of(self, function: str) -> str:
        if function == TIMER:
            return self.timer_role_arn
        return self.outputs.function_roles()[function]


@dataclass(frozen=True)
class Requirement:
    """One question for the policy simulator, and what the answer must be."""

    function: str
    role_arn: str
    actions: tuple[str, ...]
    resource: str
    label: str  # the resource in the operators' words
    why: str
    allowed: bool = True
    context: Mapping[str, str | tuple[str, ...]] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"{self.function} → {self.label}"


def expand(deployment: Deployment, needs: tuple[Need, ...] = NEEDS) -> list[Requirement]:
    """Every need as concrete questions: per difusor where it names the difusores' sites.
    Needs whose resource or role the deployment lacks (a timer not found, no
    customer-managed key) are left out; the checks that found them missing say so."""
    found: list[Requirement] = []
    for need in needs:
        role = deployment.role_of(need.function)
        if not role:
            continue
        for resource, label, account, context in _resources(deployment, need):
            found.append(
                Requirement(
                    function=need.function,
                    role_arn=role,
                    actions=need.actions,
                    resource=resource,
                    label=label,
                    why=need.why,
                    allowed=need.allowed,
                    # The SDK always speaks HTTPS; aws:ResourceAccount is what the
                    # publisher's and monitor's statements on difusor sites are confined by.
                    context={
                        "aws:SecureTransport": "true",
                        **({"aws:ResourceAccount": account} if account else {}),
                        **context,
                    },
                )
            )
    return found


_Resource = tuple[str, str, str, dict[str, str | tuple[str, ...]]]


def _resources(deployment: Deployment, need: Need) -> list[_Resource]:
    out = deployment.outputs
    partition, account, region = out.partition, out.account, out.region
    if need.kind == ORIGIN:
        prefix = need.where.endswith("/")
        key = need.where + SAMPLE_KEY if prefix else need.where
        label = f"origin {need.where}*" if prefix else f"origin {need.where}"
        return [(f"arn:{partition}:s3:::{out.origin_bucket}/{key}", label, account, {})]
    if need.kind == ORIGIN_BUCKET:
        arn = f"arn:{partition}:s3:::{out.origin_bucket}"
        return [(arn, f"origin bucket (list {need.where})", account, {"s3:prefix": need.where})]
    if need.kind == TABLE:
        name = {
            "ledger": out.ledger_table,
            "registry": out.registry_table,
            "idempotency": out.idempotency_table,
        }[need.where]
        arn = f"arn:{partition}:dynamodb:{region}:{account}:table/{name}"
        context: dict[str, str | tuple[str, ...]] = {}
        if need.function == TIMER and deployment.election:
            # The timer's statement is confined to the election's partition of the ledger.
            context["dynamodb:LeadingKeys"] = (f"ELECTION#{deployment.election}",)
        return [(arn, f"{need.where} table", account, context)]
    if need.kind == QUEUE:
        url = {
            "ingest": out.ingest_queue_url,
            "sign": out.sign_queue_url,
            "deliveries": out.delivery_queue_url,
        }[need.where]
        return [(queue_arn(url, region), f"{need.where} queue", account, {})]
    if need.kind == SECRET:
        return [(deployment.secret_arn, "signing secret", account, {})]
    if need.kind == SECRET_KEY:
        if not deployment.secret_key_arn:
            return []
        context = {
            "kms:ViaService": f"secretsmanager.{region}.amazonaws.com",
            "kms:EncryptionContext:SecretARN": deployment.secret_arn,
        }
        return [(deployment.secret_key_arn, "signing secret's KMS key", account, context)]
    if need.kind == SITE_OBJECT:
        return [
            (
                f"arn:{partition}:s3:::{d.bucket}/{SAMPLE_KEY}",
                f"{d.difusor_id} site objects",
                d.account_id,
                {},
            )
            for d in deployment.difusores
        ]
    if need.kind == SITE_BUCKET:
        return [
            (f"arn:{partition}:s3:::{d.bucket}", f"{d.difusor_id} site bucket", d.account_id, {})
            for d in deployment.difusores
        ]
    if need.kind == DELIVERY_ROLE:
        return [
            (d.role_arn, f"{d.difusor_id} delivery role", d.account_id, {})
            for d in deployment.difusores
        ]
    if need.kind == ANY:
        return [("*", "X-Ray", "", {})]
    raise ValueError(f"unknown resource kind {need.kind!r}")
