"""What UCSI watches on election night: a dashboard and alarms."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import InstituteConfig
from stacks.institute.pipeline_functions import METRICS_NAMESPACE, SERVICE

# The call requires a fresh copy at every difusor at least every 20 minutes.
DELIVERY_DEADLINE = Duration.minutes(20)
DEFAULT_PERIOD = Duration.minutes(5)
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: InstituteConfig,
        functions: dict[str, lambda_.Function],
        dead_letter_queues: dict[str, sqs.Queue],
    ) -> None:
        super().__init__(scope, construct_id)
        topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            enable_key_rotation=True,
            description="Encrypts difusion alarm notifications",
        )
        # CloudWatch publishes the alarms into the encrypted topic: without these two actions
        # in the key policy its publications fail and no alarm reaches anyone (SNS developer
        # guide, "Enable compatibility between event sources from AWS services and
        # encrypted topics").
        topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            )
        )
        self.topic = sns.Topic(
            self, "Alarms", display_name="difusion alarms", master_key=topic_key, enforce_ssl=True
        )
        # The topic's policy (CDK writes one for enforce_ssl) must also let CloudWatch publish.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        notify = actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(
            name: str,
            metric: cloudwatch.IMetric,
            description: str,
            *,
            threshold: float = 1,
            missing: cloudwatch.TreatMissingData = cloudwatch.TreatMissingData.NOT_BREACHING,
            comparison: cloudwatch.ComparisonOperator = AT_LEAST,
        ) -> None:
            created = cloudwatch.Alarm(
                self,
                name,
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=comparison,
                treat_missing_data=missing,
                alarm_description=description,
            )
            created.add_alarm_action(notify)
            self.alarms[name] = created

        for step, queue in dead_letter_queues.items():
            alarm(
                f"{step.title()}DeadLetters",
                queue.metric_approximate_number_of_messages_visible(period=Duration.minutes(1)),
                f"A {step} message exhausted its retries; see the ledger's last_error.",
            )
        for name, function in functions.items():
            alarm(
                f"{name.title()}Errors",
                function.metric_errors(period=Duration.minutes(5)),
                f"The {name} function failed; it will retry, then dead-letter.",
            )
        alarm(
            "PackagesRejected",
            self._metric("Packages_rejected", period=Duration.minutes(1)),
            "UCSI uploaded a package the pipeline refused; `difusion ledger` says why.",
        )
        monitor_period = Duration.minutes(config.monitor.period_minutes)
        # The monitor reports WindowOpen every period while the window is open: alarms
        # about freshness are gated by it, so none fires before the opening or after the close.
        window_open = self._metric("WindowOpen", period=DELIVERY_DEADLINE, statistic="Maximum")
        delivered_widgets = []
        for difusor in config.difusores:
            delivered = self._metric(
                "Delivered", difusor=difusor.difusor_id, period=DELIVERY_DEADLINE
            )
            delivered_widgets.append(delivered)
            alarm(
                f"Stale{_camel(difusor.difusor_id)}",
                cloudwatch.MathExpression(
                    expression="IF(FILL(open, 0) > 0 AND FILL(delivered, 0) < 1, 1, 0)",
                    using_metrics={"open": window_open, "delivered": delivered},
                    period=DELIVERY_DEADLINE,
                    label=f"{difusor.difusor_id}: no delivery in 20 min while open",
                ),
                f"No delivery to {difusor.difusor_id} in 20 minutes while the window is open "
                "(the call requires a fresh copy at least every 20 minutes).",
            )
        alarm(
            "UpstreamStalled",
            self._metric("UpstreamSilenceSeconds", period=monitor_period, statistic="Maximum"),
            f"No new snapshot for more than {config.monitor.upstream_stall_minutes} minutes "
            "while the window is open (at least three updates an hour are required).",
            threshold=config.monitor.upstream_stall_minutes * 60,
            comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        alarm(
            "IntegrityIncident",
            self._metric("IntegrityIncidents", period=monitor_period),
            "A difusor serves files that differ from the signed manifest; the altered files "
            "are being redelivered. See the ledger's INCIDENT# items.",
        )
        alarm(
            "DifusorSuspended",
            self._metric("DifusoresSuspended", period=monitor_period),
            "A difusor failed three consecutive update periods and was suspended; reinstate "
            "it with `difusion difusor reinstate` once its site is back.",
        )

        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"difusion-{config.election_id}"
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Deliveries per difusor",
                left=delivered_widgets or [self._metric("Delivered")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Packages",
                left=[
                    self._metric("Packages_validated"),
                    self._metric("Packages_rejected"),
                    self._metric("Snapshots_accepted"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Continuity monitor",
                left=[
                    self._metric("SiteChecksFailed", period=monitor_period),
                    self._metric("IntegrityIncidents", period=monitor_period),
                    self._metric("DifusoresSuspended", period=monitor_period),
                ],
                right=[
                    self._metric(
                        "UpstreamSilenceSeconds", period=monitor_period, statistic="Maximum"
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    q.metric_approximate_number_of_messages_visible()
                    for q in dead_letter_queues.values()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function errors and duration",
                left=[f.metric_errors() for f in functions.values()],
                right=[f.metric_duration() for f in functions.values()],
                width=12,
            ),
            cloudwatch.AlarmStatusWidget(
                title="Alarms", alarms=list(self.alarms.values()), width=24
            ),
        )

    @staticmethod
    def _metric(
        name: str,
        *,
        difusor: str | None = None,
        period: Duration = DEFAULT_PERIOD,
        statistic: str = "Sum",
    ) -> cloudwatch.Metric:
        dimensions = {"service": SERVICE}
        if difusor:
            dimensions["difusor"] = difusor
        return cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
        )


def _camel(text: str) -> str:
    return "".join(part.title() for part in text.split("-"))
