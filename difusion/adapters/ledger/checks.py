"""The continuity monitor's memory, its checks and its incidents."""

from __future__ import annotations

from collections.abc import Sequence
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
from difusion.records import CheckRecord, IncidentRecord

# The continuity monitor's own subject, the upstream (is a new snapshot arriving?): its
# records have keys of their own, apart from every difusor's (whatever a difusor is named).
UPSTREAM = "@upstream"


def _monitor_key(subject: str) -> str:
    return "UPSTREAM#MONITOR" if subject == UPSTREAM else f"MONITOR#{subject}"


def _check_key(period: str, subject: str) -> str:
    return f"UPSTREAM#CHECK#{period}" if subject == UPSTREAM else f"CHECK#{period}#{subject}"


def _incident_key(incident_id: str) -> str:
    """Incident ids are ``<period>#<subject>`` (the period it opened in)."""
    period, _, subject = incident_id.rpartition("#")
    return f"UPSTREAM#INCIDENT#{period}" if subject == UPSTREAM else f"INCIDENT#{incident_id}"


class CheckRecords(LedgerTable):
    # --- the continuity monitor -------------------------------------------------------

    def monitor_state(self, subject: str) -> MonitorState:
        item = self._table.get_item(
            Key={"pk": self._pk, "sk": _monitor_key(subject)}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return MonitorState()
        return MonitorState(
            consecutive_failures=int(item.get("consecutive_failures", 0)),
            incident_id=str(item.get("incident_id", "")),
            last_period=str(item.get("last_period", "")),
        )

    def record_check(
        self,
        subject: str,
        period: str,
        check: SiteCheck,
        state: MonitorState,
        at: datetime,
        actions: Sequence[str] = (),
        incident: str = "",
    ) -> None:
        """Record ``check``, the monitor's new memory and the ``actions`` the period owes,
        once per period (a second run of the same period raises
        :class:`PeriodAlreadyChecked`; :meth:`pending_check` then says what is still owed)."""
        check_item = {
            "pk": self._pk,
            "sk": _check_key(period, subject),
            "kind": "check",
            "difusor_id": subject,
            "period": period,
            "outcome": str(check.outcome),
            "detail": check.detail[:2000],
            "served_sequence": check.served_sequence,
            "served_snapshot_id": check.served_snapshot_id,
            "served_version": check.served_version,
            "files_checked": check.files_checked,
            "altered_paths": list(check.altered_paths[:100]),
            "checked_at": iso(at),
            # What the period must do about it, until done: a run that dies after this
            # write and before its actions leaves them to the period's next run.
            "incident_for_actions": incident,
            **({"actions_pending": list(actions)} if actions else {}),
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {"pk": self._pk, "sk": _monitor_key(subject)},
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

    def check_records(self) -> list[CheckRecord]:
        """Every difusor's site checks, period by period (the upstream's are not here)."""
        return [CheckRecord.from_item(item) for item in self.items("CHECK#")]

    def incident_records(self) -> list[IncidentRecord]:
        """Every difusor's incidents, by the period each opened in."""
        return [IncidentRecord.from_item(item) for item in self.items("INCIDENT#")]

    def upstream_incident_records(self) -> list[IncidentRecord]:
        """The upstream's incidents (no new snapshot arriving), by the period each opened in."""
        return [IncidentRecord.from_item(item) for item in self.items("UPSTREAM#INCIDENT#")]

    def pending_check(self, subject: str, period: str) -> CheckRecord | None:
        """The period's recorded check, if its actions are not all done yet."""
        item = self._table.get_item(
            Key={"pk": self._pk, "sk": _check_key(period, subject)}, ConsistentRead=True
        ).get("Item")
        if item is None or not item.get("actions_pending"):
            return None
        return CheckRecord.from_item(item)

    def actions_done(self, subject: str, period: str) -> None:
        self._table.update_item(
            Key={"pk": self._pk, "sk": _check_key(period, subject)},
            UpdateExpression="REMOVE actions_pending",
        )

    def open_incident(
        self, incident_id: str, subject: str, kind: str, cause: str, detail: str, at: datetime
    ) -> None:
        try:
            self._table.put_item(
                Item={
                    "pk": self._pk,
                    "sk": _incident_key(incident_id),
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
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            # opened by an earlier run of the same period

    def add_to_incident(
        self,
        incident_id: str,
        *,
        at: datetime,
        note: str,
        cause: str | None = None,
        action: str | None = None,
        failed_period: bool = False,
    ) -> None:
        """Count a failed period, note a cause seen, or note an action taken — once per
        ``note`` (say, the period and what it notes), however often a retried period
        gets here."""
        assignments = ["last_update_at = :at"]
        values: dict[str, Any] = {":at": iso(at), ":note": {note}}
        if failed_period:
            assignments.append("periods_failed = periods_failed + :one")
            values[":one"] = 1
        if cause:
            assignments.append("causes = list_append(causes, :cause)")
            values[":cause"] = [cause]
        if action:
            assignments.append("actions = list_append(actions, :action)")
            values[":action"] = [f"{iso(at)} {action}"]
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": _incident_key(incident_id)},
                UpdateExpression="SET " + ", ".join(assignments) + " ADD noted :note",
                ConditionExpression="attribute_exists(pk) AND NOT contains(noted, :one_note)",
                ExpressionAttributeValues={**values, ":one_note": note},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def close_incident(self, incident_id: str, at: datetime, resolution: str) -> None:
        """End the incident, once: a second close (a retried period) changes nothing."""
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": _incident_key(incident_id)},
                UpdateExpression="SET ended_at = :at, resolution = :resolution",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(ended_at)",
                ExpressionAttributeValues={":at": iso(at), ":resolution": resolution},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def clear_monitor(self, subject: str) -> None:
        """Forget the consecutive failures (on reinstatement: counting starts again)."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": _monitor_key(subject)},
            UpdateExpression="SET consecutive_failures = :zero, incident_id = :none",
            ExpressionAttributeValues={":zero": 0, ":none": ""},
        )
