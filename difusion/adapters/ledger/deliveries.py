"""Deliveries, what each difusor publishes, and the lease a delivery holds on it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from difusion.adapters.ledger.errors import (
    AlreadyPublished,
    DifusorBusy,
)
from difusion.adapters.ledger.table import (
    LedgerTable,
    forward_condition,
    is_condition_failure,
    iso,
    lease_of,
    lease_owner,
)
from difusion.models import (
    DeliveryLease,
    DeliveryOutcome,
    DeliveryRequest,
    DeliveryStatus,
    PublishedState,
)
from difusion.records import DeliveryRecord


class DeliveryRecords(LedgerTable):
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
            lease=lease_of(item),
        )

    def delivery_records(self) -> list[DeliveryRecord]:
        """Every delivery of this election (redeliveries each have their own), by snapshot
        and difusor."""
        return [DeliveryRecord.from_item(item) for item in self.items("DELIVERY#")]

    def delivery_lease(self, difusor_id: str) -> DeliveryLease | None:
        """The lease a delivery holds on the difusor, if any (expired ones included)."""
        item = self._published_item(difusor_id)
        return None if item is None else lease_of(item)

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
        forward = forward_condition(request)
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
            if not is_condition_failure(exc):
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

    def renew_lease(self, request: DeliveryRequest, lease_seconds: int, now: datetime) -> bool:
        """Extend the lease ``lease_seconds`` from ``now`` if ``request``'s delivery holds it
        (its heartbeat, while it works); False when it does not (not taken yet, released,
        or finished: nothing is renewed, nothing is taken)."""
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"PUBLISHED#{request.difusor_id}"},
                UpdateExpression="SET lease_until = :until",
                ConditionExpression="lease_owner = :owner AND lease_sequence = :seq",
                ExpressionAttributeValues={
                    ":owner": lease_owner(request),
                    ":seq": request.sequence,
                    ":until": int(now.timestamp()) + lease_seconds,
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def start_delivery(self, request: DeliveryRequest, attempt: int, at: datetime) -> None:
        """Record an attempt's start. A delivered record is history: a duplicate of the
        delivery (a message handed out again while the first run was finishing) raises
        :class:`AlreadyPublished` instead of making it ``in_progress`` again."""
        try:
            self._update_delivery(
                request,
                DeliveryStatus.IN_PROGRESS,
                "attempts = :attempt, started_at = if_not_exists(started_at, :at), "
                "attempt_started_at = :at",
                {
                    ":attempt": attempt,
                    ":at": iso(at),
                    ":delivered": str(DeliveryStatus.DELIVERED),
                },
                condition="attribute_not_exists(pk) OR #status <> :delivered",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise AlreadyPublished(request.difusor_id) from None
            raise

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
            ":at": iso(at),
        }
        delivery_values = {
            **_identity(request),
            ":status": str(DeliveryStatus.DELIVERED),
            ":copied": outcome.objects_copied,
            ":deleted": outcome.objects_deleted,
            ":bytes": outcome.bytes_copied,
            ":version": outcome.site_version or 0,
            ":slot": outcome.slot,
            ":at": iso(at),
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
                            "ConditionExpression": forward_condition(request),
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
                                "site_version = :version, slot = :slot, finished_at = :at "
                                "REMOVE last_error"
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
            if is_condition_failure(exc):
                raise AlreadyPublished(request.difusor_id) from None
            raise

    def note_catch_up(
        self, request: DeliveryRequest, period: str, why: str, at: datetime
    ) -> DeliveryRequest:
        """Note on ``request``'s record that the monitor sends it again in ``period`` (and
        why), keeping its status, or ``retrying`` when no attempt ever started. Returns the
        request as first sent: the record's reason (``accepted``, or the opening's release)
        names the delivery, its lease and the version it switches to."""
        item = self._table.update_item(
            Key=self._delivery_key(request),
            UpdateExpression=(
                "SET #kind = :kind, difusor_id = :did, snapshot_id = :sid, #seq = :seq, "
                "reason = if_not_exists(reason, :reason), delivery_scope = :scope, "
                "#status = if_not_exists(#status, :retrying), "
                "last_catch_up_at = :at, last_catch_up_why = :why "
                "ADD catch_up_periods :period"  # a set: a retried period counts once
            ),
            ExpressionAttributeNames={"#status": "status", "#seq": "sequence", "#kind": "kind"},
            ExpressionAttributeValues={
                **_identity(request),
                ":retrying": str(DeliveryStatus.RETRYING),
                ":at": iso(at),
                ":why": why,
                ":period": {period},
            },
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return replace(request, reason=str(item["reason"]))

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
                {":detail": detail, ":at": iso(at), ":delivered": str(DeliveryStatus.DELIVERED)},
                condition="attribute_not_exists(pk) OR #status <> :delivered",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
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
                    ":at": iso(at),
                    ":delivered": str(DeliveryStatus.DELIVERED),
                },
                condition="attribute_not_exists(pk) OR #status <> :delivered",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
        try:
            self._table.update_item(
                Key={"pk": self._pk, "sk": f"PUBLISHED#{request.difusor_id}"},
                UpdateExpression="REMOVE lease_sequence, lease_owner, lease_until",
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeValues={":owner": lease_owner(request)},
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

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
                **_identity(request),
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


def _identity(request: DeliveryRequest) -> dict[str, Any]:
    """The values that name a delivery record's delivery, for an update's expression."""
    return {
        ":kind": "delivery",
        ":did": request.difusor_id,
        ":sid": request.snapshot_id,
        ":seq": request.sequence,
        ":reason": request.reason,
        ":scope": str(request.scope),
    }
