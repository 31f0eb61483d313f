"""The pipeline's Lambdas: the same handler modules the local dispatcher calls, with the
domain package and its dependencies in a layer built without Docker."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from difusion import topology
from stacks.config import InstituteConfig
from stacks.institute.ledger_tables import LedgerTables
from stacks.institute.pipeline_queues import PipelineQueues
from stacks.institute.signing_key import SigningKey
from stacks.nag import acknowledge_prefixes

ROOT = Path(__file__).resolve().parent.parent.parent
LAYER_DIR = ROOT / "layers" / "build"
# One Python for the functions, the layer (layers/build.py) and the suite (the Makefile's venv):
# the repository's .python-version, which pyenv also reads.
LAMBDA_PYTHON = (ROOT / ".python-version").read_text().strip()
RUNTIME: lambda_.Runtime = getattr(lambda_.Runtime, "PYTHON_" + LAMBDA_PYTHON.replace(".", "_"))
ARCHITECTURE = lambda_.Architecture.ARM_64
SERVICE = "difusion"
METRICS_NAMESPACE = "Difusion"

INGEST, SIGN, REPLICATE, MONITOR = (
    topology.INGEST,
    topology.SIGN,
    topology.REPLICATE,
    topology.MONITOR,
)
# What the monitor puts under retention at the close, and where it writes.
RETAINED_PREFIXES = ("incoming/", "manifests/", "keys/", "closing/")


def handler_asset(name: str) -> lambda_.Code:
    """The handler module the embedded default runs too: lambdas/<name>/handler.py."""
    return lambda_.Code.from_asset(str(ROOT / "lambdas" / name), exclude=["__pycache__", "*.pyc"])


class PipelineFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InstituteConfig,
        origin: s3.IBucket,
        tables: LedgerTables,
        queues: PipelineQueues,
        signing_key: SigningKey,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (LAYER_DIR / "python").is_dir():
            raise FileNotFoundError(
                f"{LAYER_DIR}/python is missing: build the layer with `make layer` first"
            )
        self.layer = lambda_.LayerVersion(
            self,
            "DomainLayer",
            code=lambda_.Code.from_asset(str(LAYER_DIR), exclude=[".inputs-sha256"]),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="difusion domain package and pinned runtime dependencies",
        )
        self.roles: dict[str, iam.Role] = {}
        common_env = {
            "ORIGIN_BUCKET": origin.bucket_name,
            "LEDGER_TABLE": tables.ledger.table_name,
            "IDEMPOTENCY_TABLE": tables.idempotency.table_name,
            "POWERTOOLS_SERVICE_NAME": SERVICE,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        limits = {f"ARCHIVE_{k.upper()}": str(v) for k, v in config.archive_limits.items()}

        # --- ingest: untrusted archives in, staged content and a draft out -----------------
        self.ingest = self._function(
            INGEST,
            {
                **common_env,
                **config.environment("ingest"),
                "SIGN_QUEUE_URL": queues.sign.queue_url,
                **limits,
            },
        )
        origin.grant_read(self.ingest, "incoming/*")
        origin.grant_read(self.ingest, "manifests/*")  # the previous manifest's contents
        origin.grant_put(self.ingest, "objects/sha256/*")
        origin.grant_put(self.ingest, "drafts/*")
        acknowledge_prefixes(
            self.roles["ingest"],
            origin,
            ("incoming/", "manifests/", "objects/sha256/", "drafts/"),
            "Ingest reads any package and the previous manifest, and writes staged "
            "content and drafts: object names are not known in advance.",
        )
        queues.sign.grant_send_messages(self.ingest)
        self._ledger_access(self.ingest, tables.ledger, write=True)
        self._idempotency_access(self.ingest, tables.idempotency)
        self.ingest.add_event_source(
            sources.SqsEventSource(
                queues.ingest,
                batch_size=topology.QUEUES["ingest"].batch_size,
                max_concurrency=topology.QUEUES["ingest"].max_concurrency,
                report_batch_item_failures=True,
            )
        )

        # --- sign: the only reader of the secret key ---------------------------------------
        self.sign = self._function(
            SIGN,
            {
                **common_env,
                "REGISTRY_TABLE": tables.registry.table_name,
                "DELIVERY_QUEUE_URL": queues.deliveries.queue_url,
                "SIGNING_SECRET_ID": signing_key.secret.secret_name,
                **config.environment("sign"),
            },
        )
        origin.grant_read(self.sign, "drafts/*")
        origin.grant_put(self.sign, "manifests/*")
        # A manifest it signed and the ledger did not accept (the head moved, a crash before
        # the accept, a rejection) is removed: only accepted manifests stay in the origin.
        self.sign.add_to_role_policy(
            iam.PolicyStatement(
                sid="RemoveUnacceptedManifests",
                actions=["s3:DeleteObject"],
                resources=[origin.arn_for_objects("manifests/*")],
            )
        )
        origin.grant_put(self.sign, "keys/*")
        acknowledge_prefixes(
            self.roles["sign"],
            origin,
            ("drafts/", "manifests/", "keys/"),
            "Sign reads the draft it is given and writes the manifest, its signature and "
            "the public key; each name carries the snapshot id.",
        )
        queues.deliveries.grant_send_messages(self.sign)
        self._ledger_access(self.sign, tables.ledger, write=True)
        self._registry_read(self.sign, tables.registry, scan=True)
        self._idempotency_access(self.sign, tables.idempotency)
        signing_key.allow_only(self.roles["sign"])
        self.sign.add_event_source(
            sources.SqsEventSource(
                queues.sign,
                batch_size=topology.QUEUES["sign"].batch_size,
                report_batch_item_failures=True,
            )
        )

        # --- replicate: runs as the publisher role, which difusor roles trust ---------------
        self.publisher_role = iam.Role(
            self,
            "PublisherRole",
            role_name=topology.publisher_role_name(config.election_id),
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Writes PREP snapshots into the registered difusores' sites",
        )
        self.replicate = self._function(
            REPLICATE,
            {
                **common_env,
                "REGISTRY_TABLE": tables.registry.table_name,
                **config.environment("replicate"),
            },
            role=self.publisher_role,
        )
        # The sources of its server-side copies (CopyObject reads the source and writes the
        # target with one principal's credentials: the publisher's, never the difusor's).
        origin.grant_read(self.replicate, "objects/sha256/*")
        origin.grant_read(self.replicate, "manifests/*")
        origin.grant_read(self.replicate, "keys/*")
        acknowledge_prefixes(
            self.publisher_role,
            origin,
            ("objects/sha256/", "manifests/", "keys/"),
            "Replicate reads the staged content it copies, the signed manifest it delivers, "
            "the one the difusor has, and the public key; read-only.",
        )
        self._ledger_access(self.replicate, tables.ledger, write=True)
        self._registry_read(self.replicate, tables.registry, scan=False)
        self._idempotency_access(self.replicate, tables.idempotency)
        self._reach_difusor_sites(self.publisher_role, config)
        self.replicate.add_event_source(
            sources.SqsEventSource(
                queues.deliveries,
                batch_size=topology.QUEUES["deliveries"].batch_size,
                report_batch_item_failures=True,
            )
        )

        # --- monitor: each update period, checks every difusor's public site -------------
        self.monitor_role = monitor_role = iam.Role(
            self,
            "MonitorRole",
            role_name=topology.monitor_role_name(config.election_id),
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Checks difusores' sites; suspends, shows the notice, writes the "
            "closing record",
        )
        self.monitor = self._function(
            MONITOR,
            {
                **common_env,
                "REGISTRY_TABLE": tables.registry.table_name,
                "DELIVERY_QUEUE_URL": queues.deliveries.queue_url,
                **config.environment("monitor"),
            },
            role=monitor_role,
        )
        origin.grant_read(self.monitor, "manifests/*")
        origin.grant_read(self.monitor, "keys/*")
        origin.grant_put(self.monitor, "public/*")
        origin.grant_put(self.monitor, "closing/*")
        monitor_role.add_to_policy(
            iam.PolicyStatement(
                sid="RetainTheFinalPublication",
                actions=["s3:PutObjectRetention"],
                resources=[origin.arn_for_objects(f"{p}*") for p in RETAINED_PREFIXES],
            )
        )
        acknowledge_prefixes(
            monitor_role,
            origin,
            ("manifests/", "keys/", "public/", "closing/", "incoming/"),
            "The monitor reads the manifests it checks sites against, writes the public list "
            "of difusores and the closing record, and puts the final package, manifest and "
            "record under retention; their names are known only at the close.",
        )
        queues.deliveries.grant_send_messages(self.monitor)  # repairs and reinstatements
        self._ledger_access(self.monitor, tables.ledger, write=True)
        tables.registry.grant(
            self.monitor, "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"
        )
        self._reach_difusor_sites(monitor_role, config)
        self.schedule = events.Rule(
            self,
            "MonitorSchedule",
            description="One continuity-monitor period (the call: every update period)",
            schedule=events.Schedule.rate(Duration.minutes(config.monitor.period_minutes)),
            targets=[targets.LambdaFunction(self.monitor, retry_attempts=2)],
        )
        self.functions = {
            "ingest": self.ingest,
            "sign": self.sign,
            "replicate": self.replicate,
            "monitor": self.monitor,
        }

    def _reach_difusor_sites(self, role: iam.Role, config: InstituteConfig) -> None:
        """Write into the registered difusores' site buckets (their bucket policies must
        allow it too) and assume their delivery roles, which only invalidate their CDN."""
        if not config.difusores:
            return
        accounts = sorted({d.account for d in config.difusores})
        in_difusor_accounts = {"StringEquals": {"aws:ResourceAccount": accounts}}
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteIntoDifusorSites",
                actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=["arn:aws:s3:::*/*"],
                conditions=in_difusor_accounts,
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListDifusorSites",
                actions=["s3:ListBucket"],
                resources=["arn:aws:s3:::*"],
                conditions=in_difusor_accounts,
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeOnlyRegisteredDifusorRoles",
                actions=["sts:AssumeRole"],
                resources=[d.role_arn for d in config.difusores],
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:aws:s3:::*/*]",
                reason="Site bucket names are the difusores' (generated in their accounts); "
                "the statement is confined to the registered difusores' accounts by "
                "aws:ResourceAccount, and each bucket's own policy names this role.",
            ),
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:aws:s3:::*]",
                reason="Listing a site for a full redelivery; confined to the registered "
                "difusores' accounts by aws:ResourceAccount and by each bucket's policy.",
            ),
        )

    def _function(
        self,
        spec: topology.FunctionShape,
        environment: dict[str, str],
        role: iam.Role | None = None,
    ) -> lambda_.Function:
        role = role or iam.Role(
            self,
            f"{spec.name.title()}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"difusion {spec.name} function",
        )
        self.roles[spec.name] = role
        log_group = logs.LogGroup(
            self,
            f"{spec.name.title()}Logs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.RETAIN,
        )
        function = lambda_.Function(
            self,
            spec.name.title(),
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler="handler.handler",
            code=handler_asset(spec.name),
            layers=[self.layer],
            role=role,
            timeout=Duration.seconds(spec.timeout_seconds),
            memory_size=spec.memory_mb,
            ephemeral_storage_size=Size.mebibytes(spec.ephemeral_mb),
            environment=environment,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            description=f"difusion {spec.name} (lambdas/{spec.name}/handler.py)",
        )
        Validations.of(function).acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason=(
                    f"{RUNTIME.name} (.python-version) is the Python the suite, the layer and "
                    "the embedded default run, so what is tested is what deploys; Lambda "
                    "supports python3.13 until 30 June 2029 (Lambda runtimes page)"
                ),
            )
        )
        # Logs go to this function's own group only; no managed policy, no wildcard group.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords do not support "
                "resource-level permissions.",
            ),
            *[
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Action::s3:{action}*]",
                    reason="CDK's grant helpers expand to the s3 Get*/List*/Put*/Abort* "
                    "families, confined to the prefixes named in the resources.",
                )
                for action in ("GetBucket", "GetObject", "List", "Abort")
            ],
        )
        return function

    def _ledger_access(
        self, function: lambda_.Function, table: dynamodb.ITable, write: bool
    ) -> None:
        actions = ["dynamodb:GetItem", "dynamodb:Query"]
        if write:
            actions += ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem"]
        table.grant(function, *actions)

    def _registry_read(
        self, function: lambda_.Function, table: dynamodb.ITable, scan: bool
    ) -> None:
        table.grant(function, "dynamodb:GetItem", *(["dynamodb:Scan"] if scan else []))

    def _idempotency_access(self, function: lambda_.Function, table: dynamodb.ITable) -> None:
        table.grant(
            function,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
