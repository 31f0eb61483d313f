"""The ledger (DynamoDB): every snapshot, every delivery, and what each difusor publishes.

One table, partitioned by election so drills never mix with the official night::

    pk = ELECTION#<id>   sk = HEAD                          newest accepted snapshot
                         sk = SNAPSHOT#<snapshot_id>        one per snapshot
                         sk = REJECTION#<snapshot_id>#<at>  a refused re-upload of an accepted one
                         sk = DELIVERY#<snapshot_id>#<difusor_id>
                         sk = PUBLISHED#<difusor_id>        what that difusor publishes now
                         sk = WINDOW                        the publication window's state
                         sk = MONITOR#<difusor_id>          the continuity monitor's memory
                         sk = CHECK#<period>#<difusor_id>   one site check
                         sk = INCIDENT#<period>#<subject>   an incident, from start to end
                         sk = FINAL                         the closing record, written once

Invariants are conditional writes, not read-then-write: the head only advances from the
head the writer saw, and a difusor's published sequence only moves forward.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from difusion.continuity import MonitorState, SiteCheck
from difusion.errors import RejectionCode, RetryLater
from difusion.manifest import Manifest
from difusion.models import (
    DeliveryLease,
    DeliveryOutcome,
    DeliveryRequest,
    DeliveryStatus,
    Head,
    PublishedState,
    SnapshotStatus,
)
from difusion.window import WindowRecord, WindowState


class HeadMoved(Exception):
    """Another snapshot was accepted since the head was read."""


class AlreadyPublished(Exception):
    """The difusor already publishes this sequence or a newer one."""


class DifusorBusy(RetryLater):
    """Another delivery to the same difusor holds the lease (until ``seconds`` from now)."""


class WindowNotOpen(Exception):
    """The window can only be closed early while it is open."""


class PeriodAlreadyChecked(Exception):
    """Another run of the monitor already recorded this period for this difusor."""


class AlreadyFinalized(Exception):
    """The closing record was already written."""


def _iso(at: datetime) -> str:
    return at.isoformat()


def _moment(value: Any) -> datetime | None:
    """An ISO time from the ledger (the timer writes ``...Z``)."""
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _forward_condition(request: DeliveryRequest) -> str:
    """A difusor's published sequence only moves forward; a redelivery may rewrite it."""
    if request.is_redelivery:
        return "attribute_not_exists(#seq) OR #seq <= :seq"
    return "attribute_not_exists(#seq) OR #seq < :seq"


def _lease(item: dict[str, Any]) -> DeliveryLease | None:
    if "lease_until" not in item:
        return None
    return DeliveryLease(
        owner=str(item.get("lease_owner", "")),
        sequence=int(item.get("lease_sequence", 0)),
        until=int(item["lease_until"]),
    )


def lease_owner(request: DeliveryRequest) -> str:
    """The delivery a lease belongs to: every attempt of one delivery is the same owner."""
    return f"{request.snapshot_id}#{request.reason}"


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in (
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
    )


class Ledger:
    def __init__(self, dynamodb: Any, table_name: str, election: str) -> None:
        self._table = dynamodb.Table(table_name)
        # The resource's client serializes plain Python values, transactions included.
        self._client = self._table.meta.client
        self.table_name = table_name
        self.election = election
        self._pk = f"ELECTION#{election}"

    # --- snapshots -------------------------------------------------------------------

    def record_received(
        self, snapshot_id: str, object_key: str, package_size: int, at: datetime
    ) -> None:
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
                UpdateExpression=(
                    "SET #kind = :kind, snapshot_id = :sid, object_key = :key, "
                    "package_size = :size, received_at = :at, #status = :received "
                    "REMOVE rejection_code, rejection_reason"
                ),
                ConditionExpression="attribute_not_exists(pk) OR #status <> :accepted",
                ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
                ExpressionAttributeValues={
                    ":kind": "snapshot",
                    ":sid": snapshot_id,
                    ":key": object_key,
                    ":size": package_size,
                    ":at": _iso(at),
                    ":received": str(SnapshotStatus.RECEIVED),
                    ":accepted": str(SnapshotStatus.ACCEPTED),
                },
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            # Already accepted: a re-upload never reopens an accepted snapshot's record.

    def record_rejected(
        self,
        snapshot_id: str,
        object_key: str,
        code: RejectionCode,
        reason: str,
        at: datetime,
    ) -> None:
        values = {
            ":kind": "snapshot",
            ":sid": snapshot_id,
            ":key": object_key,
            ":rejected": str(SnapshotStatus.REJECTED),
            ":code": str(code),
            ":reason": reason,
            ":at": _iso(at),
            ":accepted": str(SnapshotStatus.ACCEPTED),
        }
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
                UpdateExpression=(
                    "SET #kind = :kind, snapshot_id = :sid, object_key = :key, "
                    "#status = :rejected, rejection_code = :code, rejection_reason = :reason, "
                    "rejected_at = :at"
                ),
                ConditionExpression="attribute_not_exists(pk) OR #status <> :accepted",
                ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            self._table.put_item(
                Item={
                    "pk": self._pk,
                    "sk": f"REJECTION#{snapshot_id}#{_iso(at)}",
                    "kind": "rejection",
                    "snapshot_id": snapshot_id,
                    "object_key": object_key,
                    "status": str(SnapshotStatus.REJECTED),
                    "rejection_code": str(code),
                    "rejection_reason": reason,
                    "rejected_at": _iso(at),
                }
            )

    def record_validated(
        self,
        draft: Manifest,
        object_key: str,
        draft_key: str,
        at: datetime,
        object_version: str = "",
    ) -> None:
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{draft.snapshot_id}"},
            UpdateExpression=(
                "SET #kind = :kind, snapshot_id = :sid, object_key = :key, cut_time = :cut, "
                "package_sha256 = :psha, package_size = :psize, file_count = :count, "
                "total_bytes = :bytes, draft_key = :draft, validated_at = :at, "
                "object_version = :version, #status = :validated"
            ),
            ConditionExpression="attribute_not_exists(pk) OR #status <> :accepted",
            ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
            ExpressionAttributeValues={
                ":kind": "snapshot",
                ":sid": draft.snapshot_id,
                ":key": object_key,
                ":cut": draft.cut_time,
                ":psha": draft.package.sha256,
                ":psize": draft.package.size,
                ":count": len(draft.files),
                ":bytes": draft.total_bytes,
                ":draft": draft_key,
                ":version": object_version,
                ":at": _iso(at),
                ":validated": str(SnapshotStatus.VALIDATED),
                ":accepted": str(SnapshotStatus.ACCEPTED),
            },
        )

    def note_signing(self, snapshot_id: str, manifest_key: str, at: datetime) -> None:
        """Before sign writes ``manifest_key``: what to remove if it is never accepted."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
            UpdateExpression="SET signing_key = :key, signing_at = :at",
            ConditionExpression="attribute_not_exists(pk) OR #status <> :accepted",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":key": manifest_key,
                ":at": _iso(at),
                ":accepted": str(SnapshotStatus.ACCEPTED),
            },
        )

    def accepted_manifests(self) -> dict[int, str]:
        """The chain's history as the ledger accepted it: manifest key by sequence. Only
        what the ledger accepted is history, whatever else lies in the origin."""
        return {
            int(item["sequence"]): str(item["manifest_key"])
            for item in self.items("SNAPSHOT#")
            if item.get("status") == str(SnapshotStatus.ACCEPTED) and "manifest_key" in item
        }

    def head(self) -> Head | None:
        item = self._table.get_item(Key={"pk": self._pk, "sk": "HEAD"}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            return None
        return Head(
            sequence=int(item["sequence"]),
            snapshot_id=str(item["snapshot_id"]),
            cut_time=str(item["cut_time"]),
            manifest_key=str(item["manifest_key"]),
            manifest_sha256=str(item["manifest_sha256"]),
            package_sha256=str(item["package_sha256"]),
        )

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"}, ConsistentRead=True
        ).get("Item")
        return None if item is None else _plain(item)

    def accept(
        self, manifest: Manifest, manifest_key: str, expected: Head | None, at: datetime
    ) -> Head:
        """Advance the head to ``manifest`` and mark its snapshot accepted, atomically."""
        head = Head(
            sequence=manifest.sequence,
            snapshot_id=manifest.snapshot_id,
            cut_time=manifest.cut_time,
            manifest_key=manifest_key,
            manifest_sha256=manifest.sha256,
            package_sha256=manifest.package.sha256,
        )
        if expected is None:
            head_condition = "attribute_not_exists(pk)"
            head_values: dict[str, Any] = {}
        else:
            head_condition = "#seq = :expected"
            head_values = {":expected": expected.sequence}
        head_item = {"pk": self._pk, "sk": "HEAD", "kind": "head", **head.__dict__}
        snapshot_values: dict[str, Any] = {
            ":accepted": str(SnapshotStatus.ACCEPTED),
            ":seq": manifest.sequence,
            ":msha": manifest.sha256,
            ":mkey": manifest_key,
            ":prev": manifest.previous_manifest_sha256 or "",
            ":count": len(manifest.files),
            ":bytes": manifest.total_bytes,
            ":at": _iso(at),
        }
        withdrawal_fields = ""
        withdrawal_items: list[dict[str, Any]] = []
        if manifest.withdrawal is not None:
            # The entry has no package of its own: its record is made here, and the
            # withdrawn snapshot is marked in the same transaction.
            withdrawal = manifest.withdrawal
            withdrawal_fields = (
                ", #kind = :kind, snapshot_id = :sid, cut_time = :cut, "
                "withdraws = :wsid, withdraws_sequence = :wseq, withdrawal_reason = :reason, "
                "restores_sequence = :restores"
            )
            snapshot_values.update(
                {
                    ":kind": "snapshot",
                    ":sid": manifest.snapshot_id,
                    ":cut": manifest.cut_time,
                    ":wsid": withdrawal.snapshot_id,
                    ":wseq": withdrawal.sequence,
                    ":reason": withdrawal.reason,
                    ":restores": withdrawal.restores or 0,
                }
            )
            withdrawal_items.append(
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": {"pk": self._pk, "sk": f"SNAPSHOT#{withdrawal.snapshot_id}"},
                        "UpdateExpression": (
                            "SET withdrawn_at = :at, withdrawn_by_sequence = :seq, "
                            "withdrawal_reason = :reason"
                        ),
                        "ConditionExpression": (
                            "#status = :accepted AND attribute_not_exists(withdrawn_at)"
                        ),
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {
                            ":at": _iso(at),
                            ":seq": manifest.sequence,
                            ":reason": withdrawal.reason,
                            ":accepted": str(SnapshotStatus.ACCEPTED),
                        },
                    }
                }
            )
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": head_item,
                            "ConditionExpression": head_condition,
                            **(
                                {
                                    "ExpressionAttributeNames": {"#seq": "sequence"},
                                    "ExpressionAttributeValues": head_values,
                                }
                                if head_values
                                else {}
                            ),
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {"pk": self._pk, "sk": f"SNAPSHOT#{manifest.snapshot_id}"},
                            "UpdateExpression": (
                                "SET #status = :accepted, #seq = :seq, manifest_sha256 = :msha, "
                                "manifest_key = :mkey, previous_manifest_sha256 = :prev, "
                                "file_count = :count, total_bytes = :bytes, accepted_at = :at"
                                f"{withdrawal_fields} "
                                "REMOVE rejection_code, rejection_reason"
                            ),
                            "ExpressionAttributeNames": {
                                "#status": "status",
                                "#seq": "sequence",
                                **({"#kind": "kind"} if withdrawal_fields else {}),
                            },
                            "ExpressionAttributeValues": snapshot_values,
                        }
                    },
                    *withdrawal_items,
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise HeadMoved(manifest.snapshot_id) from None
            raise
        return head

    # --- the window --------------------------------------------------------------------

    def window(self) -> WindowRecord:
        """The window's state as the timer (or an early close) left it; none yet means it
        has not opened."""
        item = self._table.get_item(Key={"pk": self._pk, "sk": "WINDOW"}, ConsistentRead=True).get(
            "Item"
        )
        if item is None:
            return WindowRecord()
        return WindowRecord(
            state=WindowState(str(item["state"])),
            closed_at=_moment(item.get("closed_at")),
            closed_early=bool(item.get("closed_early", False)),
            opened_at=_moment(item.get("opened_at")),
        )

    def close_early(self, at: datetime, reason: str) -> None:
        """Close an open window now (RE art. 353.6). Raises ``WindowNotOpen`` otherwise."""
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": "WINDOW"},
                UpdateExpression=(
                    "SET #state = :closed, closed_at = :at, closed_early = :true, "
                    "close_reason = :reason"
                ),
                ConditionExpression="#state = :open",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":closed": str(WindowState.CLOSED),
                    ":open": str(WindowState.OPEN),
                    ":at": _iso(at),
                    ":true": True,
                    ":reason": reason,
                },
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise WindowNotOpen(self.election) from None
            raise

    def mark_held(self, snapshot_id: str, reason: str, at: datetime) -> None:
        """Note on an accepted snapshot that its publication waits for the opening."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
            UpdateExpression="SET held_at = :at, held_reason = :reason",
            ExpressionAttributeValues={":at": _iso(at), ":reason": reason},
        )

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
            "checked_at": _iso(at),
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
                                ":at": _iso(at),
                            },
                        }
                    },
                    {"Put": {"TableName": self.table_name, "Item": check_item}},
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
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
                "started_at": _iso(at),
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
        values: dict[str, Any] = {":at": _iso(at)}
        if failed_period:
            assignments.append("periods_failed = periods_failed + :one")
            values[":one"] = 1
        if cause:
            assignments.append("causes = list_append(causes, :cause)")
            values[":cause"] = [cause]
        if action:
            assignments.append("actions = list_append(actions, :action)")
            values[":action"] = [f"{_iso(at)} {action}"]
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
            ExpressionAttributeValues={":at": _iso(at), ":resolution": resolution},
        )

    def clear_monitor(self, subject: str) -> None:
        """Forget the consecutive failures (on reinstatement: counting starts again)."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"MONITOR#{subject}"},
            UpdateExpression="SET consecutive_failures = :zero, incident_id = :none",
            ExpressionAttributeValues={":zero": 0, ":none": ""},
        )

    # --- the closing record -----------------------------------------------------------

    def finalized(self) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": self._pk, "sk": "FINAL"}, ConsistentRead=True).get(
            "Item"
        )
        return None if item is None else _plain(item)

    def record_final(self, record: dict[str, Any], at: datetime) -> None:
        """Note that the closing record was written; only once."""
        try:
            self._table.put_item(
                Item={
                    "pk": self._pk,
                    "sk": "FINAL",
                    "kind": "final",
                    **record,
                    "finalized_at": _iso(at),
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise AlreadyFinalized(self.election) from None
            raise

    # --- deliveries ------------------------------------------------------------------

    def published(self, difusor_id: str) -> PublishedState | None:
        """What the difusor publishes (``None``: nothing yet), with the delivery lease on it
        if one is held."""
        item = self._published_item(difusor_id)
        if item is None or "sequence" not in item:
            return None
        return PublishedState(
            sequence=int(item["sequence"]),
            snapshot_id=str(item["snapshot_id"]),
            manifest_key=str(item["manifest_key"]),
            manifest_sha256=str(item["manifest_sha256"]),
            lease=_lease(item),
        )

    def delivery_lease(self, difusor_id: str) -> DeliveryLease | None:
        """The lease a delivery holds on the difusor, if any (expired ones included)."""
        item = self._published_item(difusor_id)
        return None if item is None else _lease(item)

    def _published_item(self, difusor_id: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._table.get_item(
            Key={"pk": self._pk, "sk": f"PUBLISHED#{difusor_id}"}, ConsistentRead=True
        ).get("Item")
        return item

    def claim(self, request: DeliveryRequest, lease_seconds: int, now: datetime) -> None:
        """Take the difusor's delivery lease for ``request``.

        The lease names its delivery (snapshot and reason): a retry of the same delivery
        takes it over at once — whatever happened to the attempt before it — while any
        other delivery waits until it is released or expires. Raises
        :class:`AlreadyPublished` when the difusor already publishes this sequence or a
        newer one, and :class:`DifusorBusy` (with the lease's remaining seconds) when
        another delivery holds the lease.
        """
        epoch = int(now.timestamp())
        forward = _forward_condition(request)
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"PUBLISHED#{request.difusor_id}"},
                UpdateExpression=(
                    "SET #kind = :kind, difusor_id = :did, lease_sequence = :seq, "
                    "lease_owner = :owner, lease_until = :until"
                ),
                ConditionExpression=(
                    f"({forward}) AND "
                    "(attribute_not_exists(lease_until) OR lease_until < :now "
                    "OR lease_owner = :owner)"
                ),
                ExpressionAttributeNames={"#seq": "sequence", "#kind": "kind"},
                ExpressionAttributeValues={
                    ":kind": "published",
                    ":did": request.difusor_id,
                    ":seq": request.sequence,
                    ":owner": lease_owner(request),
                    ":until": epoch + lease_seconds,
                    ":now": epoch,
                },
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            state = self.published(request.difusor_id)
            if state is not None and (
                state.sequence > request.sequence
                or (state.sequence == request.sequence and not request.is_redelivery)
            ):
                raise AlreadyPublished(request.difusor_id) from None
            holder = self.delivery_lease(request.difusor_id)
            if holder is None:  # released between the write and the read: try again soon
                raise DifusorBusy(f"{request.difusor_id}: lease just released", 0) from None
            raise DifusorBusy(
                f"{request.difusor_id}: delivery {holder.owner} (#{holder.sequence}) holds the "
                f"lease until {datetime.fromtimestamp(holder.until, UTC).isoformat()}",
                holder.until - epoch + 1,
            ) from None

    def start_delivery(self, request: DeliveryRequest, attempt: int, at: datetime) -> None:
        self._update_delivery(
            request,
            DeliveryStatus.IN_PROGRESS,
            "attempts = :attempt, started_at = if_not_exists(started_at, :at), "
            "attempt_started_at = :at",
            {":attempt": attempt, ":at": _iso(at)},
        )

    def finish_delivery(
        self, request: DeliveryRequest, outcome: DeliveryOutcome, at: datetime
    ) -> None:
        """Record the delivery and move the difusor's published sequence forward, atomically."""
        published_values = {
            ":kind": "published",
            ":did": request.difusor_id,
            ":seq": request.sequence,
            ":sid": request.snapshot_id,
            ":mkey": request.manifest_key,
            ":msha": request.manifest_sha256,
            ":at": _iso(at),
        }
        delivery_values = {
            ":kind": "delivery",
            ":did": request.difusor_id,
            ":sid": request.snapshot_id,
            ":seq": request.sequence,
            ":reason": request.reason,
            ":scope": str(request.scope),
            ":status": str(DeliveryStatus.DELIVERED),
            ":copied": outcome.objects_copied,
            ":deleted": outcome.objects_deleted,
            ":bytes": outcome.bytes_copied,
            ":inv": outcome.invalidation_id or "",
            ":at": _iso(at),
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": {"pk": self._pk, "sk": f"PUBLISHED#{request.difusor_id}"},
                            "UpdateExpression": (
                                "SET #kind = :kind, difusor_id = :did, #seq = :seq, "
                                "snapshot_id = :sid, manifest_key = :mkey, "
                                "manifest_sha256 = :msha, published_at = :at "
                                "REMOVE lease_sequence, lease_owner, lease_until"
                            ),
                            "ConditionExpression": _forward_condition(request),
                            "ExpressionAttributeNames": {"#seq": "sequence", "#kind": "kind"},
                            "ExpressionAttributeValues": published_values,
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table_name,
                            "Key": self._delivery_key(request),
                            "UpdateExpression": (
                                "SET #kind = :kind, difusor_id = :did, snapshot_id = :sid, "
                                "#seq = :seq, reason = :reason, delivery_scope = :scope, "
                                "#status = :status, objects_copied = :copied, "
                                "objects_deleted = :deleted, bytes_copied = :bytes, "
                                "invalidation_id = :inv, finished_at = :at REMOVE last_error"
                            ),
                            "ExpressionAttributeNames": {
                                "#status": "status",
                                "#seq": "sequence",
                                "#kind": "kind",
                            },
                            "ExpressionAttributeValues": delivery_values,
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise AlreadyPublished(request.difusor_id) from None
            raise

    def record_delivery_status(
        self, request: DeliveryRequest, status: DeliveryStatus, detail: str, at: datetime
    ) -> None:
        """Record a delivery that did not run (skipped, superseded). A completed delivery's
        record is history and is never rewritten by a later replay."""
        try:
            self._update_delivery(
                request,
                status,
                "detail = :detail, finished_at = :at",
                {":detail": detail, ":at": _iso(at), ":delivered": str(DeliveryStatus.DELIVERED)},
                condition="attribute_not_exists(pk) OR #status <> :delivered",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def record_delivery_failure(
        self, request: DeliveryRequest, attempt: int, error: str, final: bool, at: datetime
    ) -> None:
        """Record a failed attempt (``failed`` when it was the last one) and release the
        lease if this delivery holds it, so the next attempt or delivery can take it. A
        delivered record is history: a late failure of a duplicate never rewrites it."""
        try:
            self._update_delivery(
                request,
                DeliveryStatus.FAILED if final else DeliveryStatus.RETRYING,
                "attempts = :attempt, last_error = :error, failed_at = :at",
                {
                    ":attempt": attempt,
                    ":error": error[:2000],
                    ":at": _iso(at),
                    ":delivered": str(DeliveryStatus.DELIVERED),
                },
                condition="attribute_not_exists(pk) OR #status <> :delivered",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"PUBLISHED#{request.difusor_id}"},
                UpdateExpression="REMOVE lease_sequence, lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": lease_owner(request)},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def record_withdrawal_failure(
        self, snapshot_id: str, error: str, final: bool, at: datetime
    ) -> None:
        """A withdrawal of ``snapshot_id`` that failed (and gave up, when ``final``)."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
            UpdateExpression="SET withdrawal_error = :error, withdrawal_failed_at = :at, "
            "withdrawal_gave_up = :final",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":error": error[:2000], ":at": _iso(at), ":final": final},
        )

    def record_snapshot_failure(
        self,
        snapshot_id: str,
        object_key: str,
        step: str,
        attempt: int,
        error: str,
        final: bool,
        at: datetime,
    ) -> None:
        """Record that ``step`` (ingest, sign) failed on a snapshot; ``failed`` when it gave
        up (its message is in the step's dead-letter queue). An accepted or rejected
        snapshot's record is final and keeps its status."""
        assignments = [
            "#kind = :kind",
            "snapshot_id = :sid",
            "object_key = if_not_exists(object_key, :key)",
            "last_error = :error",
            "failed_step = :step",
            "attempts = :attempt",
            "failed_at = :at",
        ]
        values: dict[str, Any] = {
            ":kind": "snapshot",
            ":sid": snapshot_id,
            ":key": object_key,
            ":error": f"{step}: {error}"[:2000],
            ":step": step,
            ":attempt": attempt,
            ":at": _iso(at),
            ":accepted": str(SnapshotStatus.ACCEPTED),
            ":rejected": str(SnapshotStatus.REJECTED),
        }
        if final:
            assignments.append("#status = :failed")
            values[":failed"] = str(SnapshotStatus.FAILED)
        else:
            assignments.append("#status = if_not_exists(#status, :received)")
            values[":received"] = str(SnapshotStatus.RECEIVED)
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
                UpdateExpression="SET " + ", ".join(assignments),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR NOT #status IN (:accepted, :rejected)"
                ),
                ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    # --- reading ---------------------------------------------------------------------

    def items(self, prefix: str) -> list[dict[str, Any]]:
        """Every item of this election whose sort key starts with ``prefix``."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(self._pk) & Key("sk").begins_with(prefix),
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**kwargs)
            items.extend(_plain(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _update_delivery(
        self,
        request: DeliveryRequest,
        status: DeliveryStatus,
        assignments: str,
        values: dict[str, Any],
        condition: str | None = None,
    ) -> None:
        """Set a delivery record's status and ``assignments``, with its identifying fields."""
        kwargs: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
        self._table.update_item(
            Key=self._delivery_key(request),
            UpdateExpression=(
                "SET #kind = :kind, difusor_id = :did, snapshot_id = :sid, #seq = :seq, "
                f"reason = :reason, delivery_scope = :scope, #status = :status, {assignments}"
            ),
            ExpressionAttributeNames={"#status": "status", "#seq": "sequence", "#kind": "kind"},
            ExpressionAttributeValues={
                ":kind": "delivery",
                ":did": request.difusor_id,
                ":sid": request.snapshot_id,
                ":seq": request.sequence,
                ":reason": request.reason,
                ":scope": str(request.scope),
                ":status": str(status),
                **values,
            },
            **kwargs,
        )

    def _delivery_key(self, request: DeliveryRequest) -> dict[str, str]:
        sk = f"DELIVERY#{request.snapshot_id}#{request.difusor_id}"
        if request.is_redelivery:  # its own record: the first delivery's stays as it was
            sk += f"#{request.reason}"
        return {"pk": self._pk, "sk": sk}
