"""Snapshots and the head: received, rejected, validated, signed, accepted, failed, withdrawn."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from difusion.adapters.ledger.errors import (
    HeadMoved,
)
from difusion.adapters.ledger.table import (
    LedgerTable,
    is_condition_failure,
    iso,
    plain,
)
from difusion.errors import RejectionCode
from difusion.manifest import Manifest
from difusion.models import (
    Head,
    SnapshotStatus,
)
from difusion.records import RejectionRecord, SnapshotRecord


class SnapshotRecords(LedgerTable):
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
                    ":at": iso(at),
                    ":received": str(SnapshotStatus.RECEIVED),
                    ":accepted": str(SnapshotStatus.ACCEPTED),
                },
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
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
            ":at": iso(at),
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
            if not is_condition_failure(exc):
                raise
            self._table.put_item(
                Item={
                    "pk": self._pk,
                    "sk": f"REJECTION#{snapshot_id}#{iso(at)}",
                    "kind": "rejection",
                    "snapshot_id": snapshot_id,
                    "object_key": object_key,
                    "status": str(SnapshotStatus.REJECTED),
                    "rejection_code": str(code),
                    "rejection_reason": reason,
                    "rejected_at": iso(at),
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
                ":at": iso(at),
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
                ":at": iso(at),
                ":accepted": str(SnapshotStatus.ACCEPTED),
            },
        )

    def snapshot_records(self) -> list[SnapshotRecord]:
        """Every snapshot of this election, whatever its status, withdrawal entries too."""
        return [SnapshotRecord.from_item(item) for item in self.items("SNAPSHOT#")]

    def rejection_records(self) -> list[RejectionRecord]:
        """The refused re-uploads of accepted snapshots (a rejected snapshot's own record
        says it is rejected: :attr:`SnapshotRecord.rejection`)."""
        return [RejectionRecord.from_item(item) for item in self.items("REJECTION#")]

    def accepted_manifests(self) -> dict[int, str]:
        """The chain's history as the ledger accepted it: manifest key by sequence. Only
        what the ledger accepted is history, whatever else lies in the origin."""
        return {
            s.sequence: s.manifest_key
            for s in self.snapshot_records()
            if s.accepted and s.sequence is not None and s.manifest_key is not None
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
        """The snapshot's item as stored (tests and the CLI's wait inspect it whole)."""
        item = self._table.get_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"}, ConsistentRead=True
        ).get("Item")
        return None if item is None else plain(item)

    def snapshot_record(self, snapshot_id: str) -> SnapshotRecord | None:
        """The snapshot's record, typed (``None``: never seen)."""
        item = self.snapshot(snapshot_id)
        return None if item is None else SnapshotRecord.from_item(item)

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
            ":at": iso(at),
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
                            ":at": iso(at),
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
            if is_condition_failure(exc):
                raise HeadMoved(manifest.snapshot_id) from None
            raise
        return head

    def record_withdrawal_failure(
        self, snapshot_id: str, error: str, final: bool, at: datetime
    ) -> None:
        """A withdrawal of ``snapshot_id`` that failed (and gave up, when ``final``)."""
        self._table.update_item(
            Key={"pk": self._pk, "sk": f"SNAPSHOT#{snapshot_id}"},
            UpdateExpression="SET withdrawal_error = :error, withdrawal_failed_at = :at, "
            "withdrawal_gave_up = :final",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":error": error[:2000], ":at": iso(at), ":final": final},
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
            ":at": iso(at),
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
            if not is_condition_failure(exc):
                raise
