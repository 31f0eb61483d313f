"""Monitor Lambda: one update period of the continuity monitor (EventBridge schedule).

Checks every active difusor's public site while the window is open and acts on failures;
after the close and its grace, writes the closing record once.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from difusion.adapters.factory import continuity_service
from difusion.settings import MonitorSettings
from difusion.times import parse_iso

settings = MonitorSettings.from_env(os.environ)
logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(scheduled_at=event.time)
    scheduled_at = parse_iso(event.time)
    report = continuity_service(settings).run_period(scheduled_at)
    failed = [c for c in report.checks if not c.ok]
    metrics.add_metric(name="SitesChecked", unit=MetricUnit.Count, value=len(report.checks))
    metrics.add_metric(name="SiteChecksFailed", unit=MetricUnit.Count, value=len(failed))
    metrics.add_metric(
        name="IntegrityIncidents",
        unit=MetricUnit.Count,
        value=sum(1 for c in failed if c.outcome.is_integrity_incident),
    )
    metrics.add_metric(
        name="DifusoresSuspended",
        unit=MetricUnit.Count,
        value=sum(1 for a in report.actions if a.endswith(": suspend")),
    )
    # Only while the window is open: the stall alarm reads this, so it cannot fire at night
    # before the opening or after the close.
    if report.upstream_silence_seconds is not None:
        metrics.add_metric(name="WindowOpen", unit=MetricUnit.Count, value=1)
        metrics.add_metric(
            name="UpstreamSilenceSeconds",
            unit=MetricUnit.Seconds,
            value=report.upstream_silence_seconds,
        )
    logger.info("period done", extra={"report": report.to_json()})
    return report.to_json()
