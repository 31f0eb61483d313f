"""The continuity monitor: one run per update period, while the window is open; and, once
the window has closed and its grace has passed, the closing record, once.

Per period and per active difusor it checks the public site (``difusion.continuity``),
records the check, and acts: an incident opens on the first failure, an altered file is
an integrity incident (alert and repair at once), the third consecutive failed period
suspends the difusor (notice on its portal, link disabled in the public list). An operator
reinstates a difusor, which redelivers the current snapshot in full.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from difusion.adapters.difusor_site import DifusorSites
from difusion.adapters.ledger import UPSTREAM, AlreadyFinalized, Ledger, PeriodAlreadyChecked
from difusion.adapters.origin import (
    CLOSING_PREFIX,
    PUBLIC_KEY_KEY,
    PUBLIC_PREFIX,
    OriginStore,
    signature_key,
)
from difusion.adapters.pointer_store import PointerConflict
from difusion.adapters.queues import DeliveryQueue
from difusion.adapters.registry import DifusorRegistry, StatusUnchanged
from difusion.closing import (
    build_closing_record,
    closing_record_json,
    final_snapshot,
    render_closing_record_html,
    retained_package,
)
from difusion.continuity import (
    Action,
    CheckOutcome,
    SiteCheck,
    SiteReader,
    Transition,
    advance,
    catch_up_due,
    check_site,
    period_start,
    upstream_stalled,
)
from difusion.models import DeliveryRequest, DeliveryScope, Difusor, Head, PublishedState
from difusion.notice import PUBLIC_KEY_FILE, VERIFIER_PAGE, difusores_list, suspension_notice
from difusion.ports import PointerStore
from difusion.records import CheckRecord
from difusion.signing import PublicKey
from difusion.times import parse_iso
from difusion.versions import Pointer, PointerError, notice_prefix, version_floor
from difusion.web import institute_verifier_page
from difusion.window import PublicationWindow, WindowState

logger = logging.getLogger(__name__)


# Besides the rules' actions, a failed period is counted in its incident: owed like them.
FAILED_PERIOD = "count_failed_period"


def _recorded(subject: str, record: CheckRecord) -> tuple[SiteCheck, str, list[str]]:
    """A recorded check whose actions are still owed: the check, its incident, the actions."""
    check = SiteCheck(
        subject,
        CheckOutcome(str(record.outcome)),
        record.detail or "",
        served_sequence=record.served_sequence,
        served_snapshot_id=record.served_snapshot_id or "",
        served_version=record.served_version,
        files_checked=record.files_checked or 0,
        altered_paths=record.altered_paths,
    )
    return check, record.incident_for_actions or "", list(record.actions_pending)


@dataclass(frozen=True)
class MonitorPolicy:
    period: timedelta = timedelta(minutes=15)
    sample_size: int = 32
    suspend_after: int = 3
    upstream_stall: timedelta = timedelta(minutes=20)
    retention: timedelta = timedelta(days=3650)
    institute: str = "Instituto Estatal Electoral de Baja California Sur"
    time_zone: str = "America/Mazatlan"
    # Where the institute's portal serves ``public/difusores.html``; the notice links to it.
    list_url: str = ""
    # The institute's key, pinned in config; sites are checked against it, not the origin's.
    pinned_key: PublicKey | None = None
    # How long a delivery may take before a difusor left behind gets the head again: the
    # replicate function's timeout (a live delivery also renews its lease meanwhile).
    catch_up_after: timedelta = timedelta(minutes=15)


@dataclass
class PeriodReport:
    period: str
    window: str
    checks: list[SiteCheck] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    upstream_silence_seconds: int | None = None
    finalized: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "window": self.window,
            "checks": [
                {
                    "difusor_id": c.difusor_id,
                    "outcome": str(c.outcome),
                    "detail": c.detail,
                    "altered_paths": list(c.altered_paths),
                }
                for c in self.checks
            ],
            "actions": self.actions,
            "upstream_silence_seconds": self.upstream_silence_seconds,
            "finalized": self.finalized,
        }


class ContinuityService:
    def __init__(
        self,
        origin: OriginStore,
        ledger: Ledger,
        registry: DifusorRegistry,
        sites: DifusorSites,
        reader: SiteReader,
        deliveries: DeliveryQueue,
        *,
        window: PublicationWindow,
        policy: MonitorPolicy,
        clock: Callable[[], datetime],
        concurrency: int = 8,
    ) -> None:
        self._origin = origin
        self._ledger = ledger
        self._registry = registry
        self._sites = sites
        self._reader = reader
        self._deliveries = deliveries
        self._window = window
        self._policy = policy
        self._clock = clock
        self._concurrency = concurrency

    # --- one period --------------------------------------------------------------------

    def run_period(self, scheduled_at: datetime | None = None) -> PeriodReport:
        """Run the period of ``scheduled_at`` (the schedule's tick; now if not given): a
        retried or late invocation of a tick is still that tick's period."""
        now = self._clock()
        record = self._ledger.window()
        closing = self._window.closing_for(record)
        period = period_start(scheduled_at or now, self._policy.period).isoformat()
        report = PeriodReport(period=period, window=str(record.state))
        if record.state is WindowState.OPEN and now < closing:
            self._check_difusores(period, report)
            self._catch_up(period, record.opened_at or self._window.opening, now, report)
            self._check_upstream(period, record.opened_at or self._window.opening, now, report)
            # the public board shows this period's checks (refreshed each period)
            self.publish_difusores_list()
        elif (
            record.state is WindowState.CLOSED
            and now >= closing + self._window.grace
            and self._ledger.finalized() is None
        ):
            # Nothing after the close changes a difusor: the monitor only writes the record.
            report.finalized = self.finalize()
        return report

    def _check_difusores(self, period: str, report: PeriodReport) -> None:
        targets: list[tuple[Difusor, PublishedState]] = []
        for difusor in self._registry.active():
            published = self._ledger.published(difusor.difusor_id)
            if published is not None:  # nothing delivered yet: nothing to hold it to
                targets.append((difusor, published))
        if not targets:  # nothing published yet (the key itself may not be in the origin)
            return
        public_key = self._public_key()
        if public_key is None:  # something was delivered, so the key was signed with
            raise RuntimeError(f"{PUBLIC_KEY_KEY} is not in the origin: no key to check against")

        def check(target: tuple[Difusor, PublishedState]) -> SiteCheck:
            difusor, published = target
            result = check_site(
                self._reader,
                difusor.difusor_id,
                difusor.public_url,
                public_key,
                published,
                self._policy.sample_size,
                seed=f"{period}/{difusor.difusor_id}",
            )
            if result.outcome is CheckOutcome.ALTERED and self._overlapped_delivery(
                difusor.difusor_id, published
            ):
                return result.during_delivery()
            return result

        with ThreadPoolExecutor(max_workers=self._concurrency) as pool:
            checks = list(pool.map(check, targets))
        for (difusor, published), result in zip(targets, checks, strict=True):
            report.checks.append(result)
            self._apply(difusor, published, period, result, report)

    def _catch_up(
        self, period: str, opened_at: datetime, now: datetime, report: PeriodReport
    ) -> None:
        """Send the head again to every active difusor the institute left behind: its
        delivery's worker died (the message invisible for up to six function timeouts,
        and the difusor's FIFO group behind it) or gave up into the DLQ. Noted in the
        delivery's record first; a period that dies in between is made up by the next."""
        head = self._ledger.head()
        if head is None:
            return
        snapshot = self._ledger.snapshot_record(head.snapshot_id)
        accepted = snapshot.accepted_at if snapshot is not None else None
        sent_at = max(parse_iso(accepted), opened_at) if accepted else opened_at
        for difusor in self._registry.active():
            published = self._ledger.published(difusor.difusor_id)
            # One read when something is published (its state carries the lease).
            lease = (
                published.lease
                if published is not None
                else self._ledger.delivery_lease(difusor.difusor_id)
            )
            why = catch_up_due(
                published.sequence if published else None,
                head.sequence,
                sent_at,
                lease.until if lease else None,
                now,
                self._policy.catch_up_after,
            )
            if why is None:
                continue
            request = self._ledger.note_catch_up(
                DeliveryRequest.for_head(self._ledger.election, difusor.difusor_id, head),
                period,
                why,
                now,
            )
            self._deliveries.resend(request, period)
            logger.warning(
                "delivery sent again",
                extra={"difusor_id": difusor.difusor_id, "snapshot_id": head.snapshot_id},
            )
            report.actions.append(f"{difusor.difusor_id}: catch_up #{head.sequence} ({why})")

    def _overlapped_delivery(self, difusor_id: str, before: PublishedState) -> bool:
        """Whether a delivery was writing to the difusor while it was checked: one had begun
        and not finished when the check began or when it ended (its lease was on the
        difusor: live, or left by a worker that died mid-copy, whose retry or catch-up
        finishes it), or one finished in between. Files torn by the institute's own
        delivery are not the difusor's doing."""
        after = self._ledger.published(difusor_id)
        return (
            before.lease is not None
            or after is None
            or after.lease is not None
            or after.sequence != before.sequence
            or after.manifest_sha256 != before.manifest_sha256
        )

    def _apply(
        self,
        difusor: Difusor,
        published: PublishedState,
        period: str,
        check: SiteCheck,
        report: PeriodReport,
    ) -> None:
        """Record the period's check with the actions it owes, then act, then say so: a run
        that dies in between leaves the actions to the period's next run (each is done
        once however often it is tried: incidents, notes and notices are idempotent)."""
        subject = difusor.difusor_id
        state = self._ledger.monitor_state(subject)
        transition = advance(state, check, period, self._policy.suspend_after)
        incident = transition.state.incident_id or state.incident_id
        owed = [str(a) for a in transition.actions] + ([FAILED_PERIOD] if check.failed else [])
        recorded = self._record_or_resume(subject, period, check, transition, incident, owed)
        if recorded is None:
            return  # another run of this period recorded it and acted on it
        check, incident, owed = recorded
        if check.failed:
            logger.warning(
                "site check failed",
                extra={"difusor_id": subject, "period": period, "detail": check.detail},
            )
        for action in owed:
            if action != FAILED_PERIOD:
                report.actions.append(f"{subject}: {action}")
            self._act(difusor, published, period, check, incident, action)
        if owed:
            self._ledger.actions_done(subject, period)

    def _record_or_resume(
        self,
        subject: str,
        period: str,
        check: SiteCheck,
        transition: Transition,
        incident: str,
        owed: list[str],
    ) -> tuple[SiteCheck, str, list[str]] | None:
        """Record the period's check with what it owes; if a run of this period recorded it
        already, what that run still owes (``None``: nothing, it is done)."""
        try:
            self._ledger.record_check(
                subject,
                period,
                check,
                transition.state,
                self._clock(),
                actions=owed,
                incident=incident,
            )
        except PeriodAlreadyChecked:
            pending = self._ledger.pending_check(subject, period)
            return None if pending is None else _recorded(subject, pending)
        return check, incident, owed

    def _act(
        self,
        difusor: Difusor,
        published: PublishedState,
        period: str,
        check: SiteCheck,
        incident: str,
        action: str,
    ) -> None:
        now = self._clock()
        if action == Action.OPEN_INCIDENT:
            kind = "integrity" if check.outcome is CheckOutcome.ALTERED else "continuity"
            self._ledger.open_incident(
                incident, difusor.difusor_id, kind, str(check.outcome), check.detail, now
            )
        elif action == Action.ALERT:
            logger.error(
                "integrity incident: the difusor serves files that differ from the signed manifest",
                extra={"difusor_id": difusor.difusor_id, "paths": list(check.altered_paths[:20])},
            )
        elif action == Action.REPAIR:
            self._repair(difusor, published, period, check, incident)
        elif action == Action.SUSPEND:
            self._suspend(difusor, period, incident, check)
        elif action == Action.CLOSE_INCIDENT:
            self._ledger.close_incident(incident, now, f"recovered: {check.detail}")
        elif action == FAILED_PERIOD:
            self._ledger.add_to_incident(
                incident,
                at=now,
                note=f"{period}:failed",
                cause=f"{period} {check.outcome}",
                failed_period=True,
            )

    def _repair(
        self,
        difusor: Difusor,
        published: PublishedState,
        period: str,
        check: SiteCheck,
        incident: str,
    ) -> None:
        snapshot = self._ledger.snapshot_record(published.snapshot_id)
        request = DeliveryRequest(
            election=self._ledger.election,
            difusor_id=difusor.difusor_id,
            snapshot_id=published.snapshot_id,
            sequence=published.sequence,
            manifest_key=published.manifest_key,
            manifest_sha256=published.manifest_sha256,
            cut_time=(snapshot.cut_time if snapshot is not None else None) or "",
            reason=f"repair:{period}",
            scope=DeliveryScope.REPAIR,
            paths=check.altered_paths,
        )
        self._deliveries.send([request])  # one per period: its reason is the period's
        self._ledger.add_to_incident(
            incident,
            at=self._clock(),
            note=f"{period}:repair",
            action=f"redelivery of {len(check.altered_paths)} altered files requested",
        )

    def _suspend(self, difusor: Difusor, period: str, incident: str, check: SiteCheck) -> None:
        now = self._clock()
        reason = (
            f"{self._policy.suspend_after} consecutive failed update periods "
            f"(last: {check.outcome}: {check.detail})"
        )
        try:
            suspended = self._registry.suspend(difusor.difusor_id, reason[:500], now)
        except StatusUnchanged:  # an earlier run of this period suspended it
            suspended = self._registry.get(difusor.difusor_id)
        logger.error(
            "difusor suspended", extra={"difusor_id": difusor.difusor_id, "reason": reason}
        )
        self._ledger.add_to_incident(
            incident, at=now, note=f"{period}:suspend", action="transmission interrupted"
        )
        self._ledger.add_to_incident(
            incident,
            at=now,
            note=f"{period}:notice",
            action=self._show_notice(suspended, incident, now),
        )
        self.publish_difusores_list()

    def _show_notice(self, difusor: Difusor, incident: str, now: datetime) -> str:
        """Replace the results on the difusor's portal with the notice, where its bucket
        and its pointer still accept writes; say what happened either way. The notice goes
        beside the slots (``_aviso/<id>/``, one per incident), then one pointer write makes
        every URL of the site lead to it; the slots are left as they are, unrouted."""
        notice_id = "aviso-" + hashlib.sha256(incident.encode()).hexdigest()[:16]
        try:
            site = self._sites.open(difusor)
            prefix = notice_prefix(notice_id)
            for path, (body, content_type) in suspension_notice(
                difusor,
                self._policy.institute,
                self._policy.list_url,
                now,
                self._policy.time_zone,
            ).items():
                site.put_bytes(prefix + path, body, content_type)
            self._point_to_notice(site.pointer, notice_id, version_floor(self._clock()))
        except (ClientError, RuntimeError, OSError, PointerError) as exc:
            logger.error("could not show the notice", extra={"difusor_id": difusor.difusor_id})
            return f"notice not shown: {type(exc).__name__}: {exc}"[:500]
        return "notice shown on its portal"

    @staticmethod
    def _point_to_notice(store: PointerStore, notice_id: str, floor: int) -> None:
        """Suspend the pointer (a retried period finds it suspended already). A delivery
        that raced it loses its own compare-and-set; one that won is simply overwritten
        here, at the ETag read. With no pointer, the versions after reinstatement start
        above ``floor`` (:func:`difusion.versions.version_floor`)."""
        for _ in range(3):
            stored = store.read()
            pointer = stored.pointer
            if pointer is not None and pointer.notice == notice_id:
                return
            last = pointer.last_version if pointer is not None else floor
            try:
                store.write(Pointer.suspended(notice_id, last), stored.etag)
                return
            except PointerConflict:
                continue
        raise PointerConflict("the version pointer kept changing while the notice was put up")

    def publish_difusores_list(self) -> None:
        """The institute's public board (suspended difusores lose their link; each one's
        last check; the latest signed snapshot), and beside it the institute's verifier with
        the key pinned in it and the key itself."""
        latest: dict[str, CheckRecord] = {}
        for record in self._ledger.check_records():
            known = latest.get(record.difusor_id)
            if known is None or (record.period or "") >= (known.period or ""):
                latest[record.difusor_id] = record
        objects = difusores_list(
            self._registry.all(),
            self._policy.institute,
            self._clock(),
            self._policy.time_zone,
            checks=latest,
            head=self._ledger.head(),
        )
        key = self._public_key()
        if key is not None:
            objects[VERIFIER_PAGE] = (
                institute_verifier_page(key, self._policy.institute),
                "text/html; charset=utf-8",
            )
            objects[PUBLIC_KEY_FILE] = (key.to_file().encode(), "text/plain; charset=utf-8")
        for name, (body, content_type) in objects.items():
            self._origin.put_bytes(PUBLIC_PREFIX + name, body, content_type)

    def _public_key(self) -> PublicKey | None:
        """The institute's key: pinned in config, else the origin's (none before the first
        snapshot is signed)."""
        if self._policy.pinned_key is not None:
            return self._policy.pinned_key
        stored = self._origin.get_bytes_if_exists(PUBLIC_KEY_KEY)
        return None if stored is None else PublicKey.from_text(stored.decode())

    def _check_upstream(
        self, period: str, opened_at: datetime, now: datetime, report: PeriodReport
    ) -> None:
        head = self._ledger.head()
        accepted_at = None
        if head is not None:
            snapshot = self._ledger.snapshot_record(head.snapshot_id)
            if snapshot is not None and snapshot.accepted_at:
                accepted_at = parse_iso(snapshot.accepted_at)
        silence = upstream_stalled(accepted_at, opened_at, now, self._policy.upstream_stall)
        since = max(accepted_at, opened_at) if accepted_at else opened_at
        report.upstream_silence_seconds = int((now - since).total_seconds())
        check = SiteCheck(
            UPSTREAM,
            CheckOutcome.OK if silence is None else CheckOutcome.STALE,
            "a snapshot within the limit"
            if silence is None
            else f"no new snapshot for {int(silence.total_seconds() // 60)} min "
            f"(at least three updates an hour are required)",
        )
        state = self._ledger.monitor_state(UPSTREAM)
        transition = advance(state, check, period, threshold=10**9)  # never suspends
        incident = transition.state.incident_id or state.incident_id
        owed = [str(a) for a in transition.actions] + ([FAILED_PERIOD] if not check.ok else [])
        recorded = self._record_or_resume(UPSTREAM, period, check, transition, incident, owed)
        if recorded is None:
            return
        check, incident, owed = recorded
        for action in owed:
            if action == Action.OPEN_INCIDENT:
                report.actions.append(f"upstream: {action}")
                logger.error("upstream stalled", extra={"detail": check.detail})
                self._ledger.open_incident(
                    incident, UPSTREAM, "upstream_stall", "no new snapshot", check.detail, now
                )
            elif action == Action.CLOSE_INCIDENT:
                report.actions.append(f"upstream: {action}")
                self._ledger.close_incident(incident, now, "a new snapshot arrived")
            elif action == FAILED_PERIOD:
                self._ledger.add_to_incident(
                    incident, at=now, note=f"{period}:failed", failed_period=True
                )
        if owed:
            self._ledger.actions_done(UPSTREAM, period)

    # --- the operator ------------------------------------------------------------------

    def reinstate(self, difusor_id: str, reason: str) -> DeliveryRequest | None:
        """Make a suspended difusor active again and redeliver the current snapshot in full.
        Returns the delivery requested (``None`` when nothing was accepted yet)."""
        now = self._clock()
        difusor = self._registry.reinstate(difusor_id, reason, now)
        state = self._ledger.monitor_state(difusor_id)
        self._ledger.clear_monitor(difusor_id)
        if state.incident_id:
            self._ledger.add_to_incident(
                state.incident_id,
                at=now,
                note=f"reinstated:{now.isoformat()}",
                action=f"reinstated: {reason}",
            )
            self._ledger.close_incident(state.incident_id, now, f"reinstated by UCSI: {reason}")
        self.publish_difusores_list()
        head: Head | None = self._ledger.head()
        if head is None:
            return None
        request = DeliveryRequest.for_head(
            self._ledger.election,
            difusor.difusor_id,
            head,
            reason=f"reinstate:{now.strftime('%Y%m%dT%H%M%S')}",
            scope=DeliveryScope.FULL,
        )
        self._deliveries.send([request])
        return request

    # --- the close ---------------------------------------------------------------------

    def finalize(self) -> dict[str, Any]:
        """Write the closing record, put the final publication under retention, and note
        it in the ledger; once. Returns where the record went."""
        now = self._clock()
        record = self._ledger.window()
        closing = self._window.closing_for(record)
        snapshots = self._ledger.snapshot_records()
        until = now + self._policy.retention
        retained = []
        final = final_snapshot(snapshots, closing)
        if final is not None:
            # A withdrawal entry has no package: the one whose files it publishes is kept.
            package = retained_package(final, snapshots)
            to_keep = [
                *([package] if package else []),
                (str(final.manifest_key), ""),
                (signature_key(str(final.manifest_key)), ""),
                (PUBLIC_KEY_KEY, ""),
            ]
            for key, version in to_keep:
                locked = self._origin.retain(key, until, version)
                retained.append(
                    {"key": key, "version_id": locked, "retain_until": until.isoformat()}
                )
        difusores = [
            {k: v for k, v in d.to_item().items() if k != "external_id"}
            for d in self._registry.all()
        ]
        closing_record = build_closing_record(
            election=self._ledger.election,
            time_zone=self._policy.time_zone,
            window=self._window,
            record=record,
            snapshots=snapshots,
            refused_reuploads=self._ledger.rejection_records(),
            deliveries=self._ledger.delivery_records(),
            incidents=self._ledger.incident_records(),
            upstream_incidents=self._ledger.upstream_incident_records(),
            checks=self._ledger.check_records(),
            difusores=difusores,
            retained=retained,
            generated_at=now,
        )
        base = f"{CLOSING_PREFIX}{self._ledger.election}/registro-de-cierre"
        written = {
            base + ".json": self._origin.put_bytes(
                base + ".json", closing_record_json(closing_record), "application/json"
            ),
            base + ".html": self._origin.put_bytes(
                base + ".html",
                render_closing_record_html(closing_record).encode("utf-8"),
                "text/html; charset=utf-8",
            ),
        }
        # The versions just written are locked: the monitor never reads closing/ back.
        for key, version in written.items():
            self._origin.retain(key, until, version)
        self.publish_difusores_list()
        summary = {
            "record_key": base + ".json",
            "record_html_key": base + ".html",
            "final_snapshot_id": closing_record["final_snapshot"]["snapshot_id"]
            if closing_record["final_snapshot"]
            else "",
            "retain_until": until.isoformat(),
        }
        try:
            self._ledger.record_final(summary, now)
        except AlreadyFinalized:
            logger.info("closing record already noted", extra={"election": self._ledger.election})
        logger.info("closing record written", extra=summary)
        return summary
