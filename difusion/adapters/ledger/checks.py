"""The continuity monitor's memory, its checks and its incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from difusion.adapters.ledger.errors import (
    PeriodAlreadyChecked,
)
from difusion.adapters.ledger.table import (
    LedgerTable,
    is_condition_failure,
    iso,
)
from difusion.continuity import MonitorState, SiteCheck


class CheckRecords(LedgerTable):
    # --- the continuity monitor -------------------------------------------------------

    def monitor_state(self, subject: str) -> MonitorState:
        item = self._table.get_item(
            Key={"pk": self._pk, "sk": f"MONITOR#{subject}"}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return MonitorState()
        return MonitorState(
            consecutive_failures=int(item.get("consecutive_failures", 0)),
            incident_id=str(item.get("incident_id", "")),
            last_period=str(item.get("last_period", "")),
        )

    def record_check(
        self, subject: str, period: str, check: SiteCheck, state: MonitorState, at: datetime
    ) -> None:
        """Record ``check`` and the monitor's new memory, once per period (a second run of
        the same period raises :class:`PeriodAlreadyChecked`)."""
        check_item = {
            "pk": self._pk,
            "sk": f"CHECK#{period}#{subject}",
            "kind": "check",
            "difusor_id": subject,
            "period": period,
            "outcome": str(check.outcome),
            "detail": check.detail[:2000],
            "served_sequence": check.served_sequence,
            "served_snapshot_id": check.served_snapshot_id,
            "files_checked": check.files_checked,
            "altered_paths": list(check.altered_paths[:100]),
            "checked_at": iso(at),
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {"pk": self._pk, "sk": f"MONITOR#{subject}"},
                            "UpdateExpression": (
                                "SET #kind = :kind, difusor_id = :did, "
                                "consecutive_failures = :failures, incident_id = :incident, "
                                "last_period = :period, last_outcome = :outcome, "
                                "last_checked_at = :at"
                            ),
                            "ConditionExpression": (
                                "attribute_not_exists(last_period) OR last_period < :period"
                            ),
                            "ExpressionAttributeNames": {"#kind": "kind"},
                            "ExpressionAttributeValues": {
                                ":kind": "monitor",
                                ":did": subject,
                                ":failures": state.consecutive_failures,
                                ":incident": state.incident_id,
                                ":period": period,
                                ":outcome": str(check.outcome),
                                ":at": iso(at),
                            },
                        }
                    },
                    {"Put": {"TableName": self.table_name, "Item": check_item}},
                ]
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise PeriodAlreadyChecked(f"{subject} in {period}") from None
            raise

    def open_incident(
        self, incident_id: str, subject: str, kind: str, cause: str, detail: str, at: datetime
    ) -> None:
        self._table.put_item(
            Item={
                "pk": self._pk,
                "sk": f"INCIDENT#{incident_id}",
                "kind": "incident",
                "incident_id": incident_id,
                "difusor_id": subject,
                "incident_kind": kind,
                "cause": cause,
                "detail": detail[:2000],
                "started_at": iso(at),
                "periods_failed": 0,
                "causes": [],
                "actions": [],
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def add_to_incident(
        self,
        incident_id: str,
        *,
        at: datetime,
        cause: str | None = None,
        action: str | None = None,
        failed_period: bool = False,
    ) -> None:
        """Count a failed period, note a cause seen, or note an action taken."""
        assignments = ["last_update_at = :at"]
        values: dict[str, Any] = {":at": iso(at)}
        if failed_period:
            assignments.append("periods_failed = periods_failed + :one")
            values[":one"] = 1
        if cause:
            assignments.append("causes = list_append(causes, :cause)")
            values[":cause"] = [cause]
        if action:
            assignments.append("actions = list_append(actions, :action)")
            values[":action"] = [f"{iso(at)} {action}"]
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"INCIDENT#{incident_id}"},
            UpdateExpression="SET " + ", ".join(assignments),
            ExpressionAttributeValues=values,
        )

    def close_incident(self, incident_id: str, at: datetime, resolution: str) -> None:
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"INCIDENT#{incident_id}"},
            UpdateExpression="SET ended_at = :at, resolution = :resolution",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(ended_at)",
            ExpressionAttributeValues={":at": iso(at), ":resolution": resolution},
        )

    def clear_monitor(self, subject: str) -> None:
        """Forget the consecutive failures (on reinstatement: counting starts again)."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"MONITOR#{subject}"},
            UpdateExpression="SET consecutive_failures = :zero, incident_id = :none",
            ExpressionAttributeValues={":zero": 0, ":none": ""},
        )
