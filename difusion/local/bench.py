"""``make bench``: the pipeline against what an operator would otherwise use, side by side.

1. Ingest compute (read, validate, hash, manifest, sign; staging to a store that costs
   nothing) against ``unzip`` + ``sha256sum`` on the same package, at BCS size and 4×, with
   peak memory; then the full ingest on the emulator with the staging requests it made.
2. Replication of a typical cut (a few percent of files changed) to 1, 3 and 5 difusores
   against the baseline a UCSI engineer would script: extract the package into a staging
   bucket, ``aws s3 sync`` it into each difusor's bucket, ``aws cloudfront
   create-invalidation``. S3 requests are counted at the emulator (its request log), not
   in our code.
3. Latency: from the package landing in the origin to every difusor's signed manifest live.

Writes ``out/bench/results.json`` and ``out/bench/*.png``; prints one line per comparison.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from difusion.generator import SeriesSpec, Snapshot, generate_series
from difusion.local import browser, idempotent
from difusion.local.emulator import LocalEmulator
from difusion.local.kvs import store_requests
from difusion.local.pipeline import LocalPipeline, PipelineOptions
from difusion.local.probe import PageLoads, Probe, at_switches
from difusion.local.provision import DEMO_DIFUSORES, DifusorAccount, account_session
from difusion.manifest import Manifest
from difusion.memoria.synthetic import TrafficSpec, generate_logs
from difusion.publication import MANIFEST_PATH
from difusion.signing import SecretKey
from difusion.times import parse_iso

TYPICAL_CUT = 16  # of a 1,100-casilla night: 2 % of the files change from the cut before
DIFUSOR_COUNTS = (1, 3, 5)
_LOG_LINE = re.compile(r'"(GET|PUT|POST|DELETE|HEAD) (/[^ ]*) HTTP')


def difusores(count: int) -> tuple[DifusorAccount, ...]:
    extra = tuple(DifusorAccount(f"difusor-{n}", f"Difusor {n}", f"{n}" * 12) for n in range(4, 10))
    return (DEMO_DIFUSORES + extra)[:count]


# --- 1. ingest compute --------------------------------------------------------------------


def ingest_compute_child(package: Path) -> None:
    """Run in a subprocess (so its peak memory is its own): our ingest and sign compute on
    ``package``, staging into a store that costs nothing. Prints JSON."""
    from difusion.adapters.heartbeat import HoldTimes
    from difusion.archive import ArchiveLimits
    from difusion.manifest import Manifest
    from difusion.services.ingest import IngestService
    from difusion.settings import IngestSettings
    from difusion.signing import sign
    from difusion.topology import RETRY

    class NullOrigin:
        bucket = "null"

        def __init__(self) -> None:
            self.staged = 0
            self.draft = b""

        def download(self, key: str, sink: Any, version_id: str = "") -> tuple[int, str]:
            import hashlib

            digest = hashlib.sha256()
            size = 0
            with package.open("rb") as source:
                while chunk := source.read(1024 * 1024):
                    digest.update(chunk)
                    sink.write(chunk)
                    size += len(chunk)
            sink.flush()
            return size, digest.hexdigest()

        def stage_bytes(self, sha256: str, data: bytes) -> None:
            self.staged += 1

        def stage_stream(self, sha256: str, stream: Any) -> None:
            while stream.read(1024 * 1024):
                pass
            self.staged += 1

        def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
            self.draft = data

    class NullLedger:
        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args, **kwargs: None

    class NullQueue:
        def send(self, request: Any) -> None:
            pass

    settings = IngestSettings(
        election="DIP_LOC_BCS",
        time_zone="America/Mazatlan",
        origin_bucket="null",
        ledger_table="null",
        idempotency_table="null",
        retry=RETRY,
        max_attempts=1,
        hold=HoldTimes(),
        sign_queue_url="null",
        limits=ArchiveLimits(),
        staging_concurrency=16,
    )
    origin = NullOrigin()
    key = SecretKey.generate()
    started = time.perf_counter()
    service = IngestService(
        settings,
        origin,  # type: ignore[arg-type]
        NullLedger(),  # type: ignore[arg-type]
        NullQueue(),  # type: ignore[arg-type]
        clock=lambda: datetime.now(UTC),
    )
    result = service.ingest(f"incoming/{package.name}")
    manifest = Manifest.from_bytes(origin.draft).chained(
        sequence=1, previous_manifest_sha256=None, created_at=datetime.now(UTC)
    )
    sign(manifest.canonical_bytes(), key, trusted_comment="bench", untrusted_comment="bench")
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "files": result.file_count,
                "staged": origin.staged,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    )


def _peak_rss_mb() -> float:
    """This process's peak resident memory since its exec: Linux's ``VmHWM`` belongs to
    the address space, which exec replaces, whereas ``ru_maxrss`` survives exec and would
    report the parent's size at the fork (the bench's parent holds the generated series)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ingest_compute(package: Path, runs: int = 3) -> dict[str, Any]:
    best: dict[str, Any] | None = None
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-m", "difusion.local.bench", "ingest-child", str(package)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        measured = json.loads(out.strip().splitlines()[-1])
        if best is None or measured["seconds"] < best["seconds"]:
            best = measured
    assert best is not None
    return best


def unzip_sha256sum(package: Path, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as work:
            started = time.perf_counter()
            subprocess.run(["unzip", "-q", "-o", str(package), "-d", work], check=True)
            files = [str(p) for p in Path(work).rglob("*") if p.is_file()]
            for start in range(0, len(files), 500):
                subprocess.run(
                    ["sha256sum", *files[start : start + 500]],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            best = min(best, time.perf_counter() - started)
    return best


# --- requests counted at the emulator -------------------------------------------------------


class RequestLog:
    """The emulator's request log, read between two marks."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mark = 0

    def mark(self) -> None:
        self._mark = self._path.stat().st_size

    def since_mark(self) -> list[tuple[str, str]]:
        with self._path.open("rb") as log:
            log.seek(self._mark)
            text = log.read().decode("utf-8", "replace")
        return [(m[1], m[2]) for m in _LOG_LINE.finditer(text)]

    @staticmethod
    def s3(requests: list[tuple[str, str]], buckets: set[str]) -> list[tuple[str, str]]:
        return [
            (verb, path) for verb, path in requests if path.split("/")[1].split("?")[0] in buckets
        ]


# --- 2 and 3. replication and latency -----------------------------------------------------


@dataclass
class Cycle:
    seconds: float
    s3_requests: int
    difusor_requests: int
    replication_requests: int
    latency_seconds: float | None = None
    staging_puts: int = 0
    copies: int = 0  # server-side copies into the difusores' slots
    pointer_requests: int = 0  # DescribeKeyValueStore and PutKey (the switch)


def our_cycle(
    pipeline: LocalPipeline, log: RequestLog, base: Path, cut: Path, warm: Path | None = None
) -> Cycle:
    """One cut delivered, measured, after ``warm`` and ``base`` filled the two slots (the
    slot the cut refreshes holds ``warm``)."""
    if warm is not None:
        pipeline.process(warm)
    pipeline.process(base)
    stores = [d.kvs_arn for d in pipeline.deployment.difusores]
    before = [_pointer_calls(arn) for arn in stores]
    log.mark()
    landed = datetime.now(UTC)
    started = time.perf_counter()
    record = pipeline.process(cut)
    seconds = time.perf_counter() - started
    assert record.get("status") == "accepted", record
    deliveries = pipeline.ledger.items(f"DELIVERY#{record['snapshot_id']}#")
    assert len(deliveries) == len(pipeline.deployment.difusores)
    assert all(d["status"] == "delivered" for d in deliveries), deliveries
    live = max(parse_iso(d["finished_at"]) for d in deliveries)
    origin = pipeline.deployment.origin_bucket
    sites = {d.bucket for d in pipeline.deployment.difusores}
    requests = log.since_mark()
    s3 = RequestLog.s3(requests, {origin, *sites})
    on_sites = RequestLog.s3(requests, sites)
    replication_reads = [
        (verb, path)
        for verb, path in RequestLog.s3(requests, {origin})
        if verb == "GET"
        and ("/manifests/" in path or "/keys/" in path or "prefix=manifests" in path)
    ]
    pointer = sum(_pointer_calls(arn) for arn in stores) - sum(before)
    return Cycle(
        seconds=seconds,
        s3_requests=len(s3),
        difusor_requests=len(on_sites),
        replication_requests=len(on_sites) + len(replication_reads) + pointer,
        latency_seconds=(live - landed).total_seconds(),
        staging_puts=sum(1 for verb, path in s3 if verb == "PUT" and "/objects/sha256/" in path),
        copies=sum(d["objects_copied"] for d in deliveries),
        pointer_requests=pointer,
    )


def _pointer_calls(kvs_arn: str) -> int:
    """The institute's calls on a store: its reads of the ETag and its writes (GetKey is
    also what the local sites server reads on every request, so it is left out)."""
    calls = store_requests(kvs_arn)
    return calls.get("DescribeKeyValueStore", 0) + calls.get("PutKey", 0)


def baseline_cycle(
    emulator: LocalEmulator,
    log: RequestLog,
    aws: Path,
    count: int,
    base: Path,
    cut: Path,
    suffix: str,
) -> Cycle:
    """The obvious script: extract to staging, ``aws s3 sync`` to each difusor, invalidate."""
    env = {**os.environ, **emulator.environment(), "AWS_PAGER": ""}
    staging = f"baseline-staging-{suffix}"
    targets = []
    for account in difusores(count):
        session = account_session(account.account_id)
        bucket = f"baseline-{account.difusor_id}-{suffix}"
        idempotent.create_bucket(session.client("s3"), Bucket=bucket)
        distribution = idempotent.create_distribution(
            session.client("cloudfront"), distribution_config(bucket)
        )["Id"]
        credentials = session.get_credentials().get_frozen_credentials()
        as_difusor = {
            **env,
            "AWS_ACCESS_KEY_ID": credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
            "AWS_SESSION_TOKEN": credentials.token or "",
        }
        targets.append((bucket, distribution, as_difusor))
    subprocess.run(
        [str(aws), "s3", "mb", f"s3://{staging}"], env=env, check=True, capture_output=True
    )

    def run_cycle(package: Path) -> float:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            subprocess.run(["unzip", "-q", "-o", str(package), "-d", work], check=True)
            subprocess.run(
                [
                    str(aws),
                    "s3",
                    "cp",
                    "--recursive",
                    "--only-show-errors",
                    work,
                    f"s3://{staging}/",
                ],
                env=env,
                check=True,
            )
        for bucket, distribution, as_difusor in targets:
            subprocess.run(
                [
                    str(aws),
                    "s3",
                    "sync",
                    "--delete",
                    "--only-show-errors",
                    f"s3://{staging}/",
                    f"s3://{bucket}/",
                ],
                env=env,
                check=True,
            )
            subprocess.run(
                [
                    str(aws),
                    "cloudfront",
                    "create-invalidation",
                    "--distribution-id",
                    distribution,
                    "--paths",
                    "/*",
                ],
                env=as_difusor,
                check=True,
                capture_output=True,
            )
        return time.perf_counter() - started

    run_cycle(base)
    log.mark()
    seconds = run_cycle(cut)
    requests = log.since_mark()
    sites = {bucket for bucket, _, _ in targets}
    on_sites = RequestLog.s3(requests, sites)
    return Cycle(
        seconds=seconds,
        s3_requests=len(RequestLog.s3(requests, {staging, *sites})),
        difusor_requests=len(on_sites),
        replication_requests=len(on_sites),
        latency_seconds=seconds,
    )


def distribution_config(bucket: str) -> dict[str, Any]:
    """A bare CloudFront distribution in front of ``bucket``, the bucket's name its caller
    reference."""
    return {
        "CallerReference": bucket,
        "Comment": bucket,
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "site",
                    "DomainName": f"{bucket}.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "site",
            "ViewerProtocolPolicy": "redirect-to-https",
            "MinTTL": 0,
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            "TrustedSigners": {"Enabled": False, "Quantity": 0},
        },
    }


# --- the run -------------------------------------------------------------------------------


SECTIONS = ("ingest", "replication", "serving", "memoria", "browser")
# the page-load probe: at least this many loads, and a batch begun at each switch
PAGE_LOADS = 1_000
PAGES_AT_EACH_SWITCH = 35
MEMORIA_LINES = 10_000_000
# DuckDB's own limit (difusion.memoria.traffic.MEMORY_LIMIT) and Python's share beside it
MEMORIA_MEMORY_BOUND_MB = 3 * 1024 + 512


def main(
    out_dir: Path, aws: Path, small: bool = False, sections: tuple[str, ...] = SECTIONS
) -> dict[str, Any]:
    """The benchmark's ``sections`` (all by default); ``small``: acta images of 6 KB
    instead of real scans' 100–300 KB (a quicker run, the request counts unchanged)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    packages_dir = out_dir / "packages"
    spec: Callable[..., SeriesSpec] = SeriesSpec if small else SeriesSpec.realistic
    results: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(),
        "acta_image_bytes": spec().image_bytes,
    }
    lines: list[str] = []
    if "memoria" in sections:
        results["memoria"] = memoria_scale(out_dir / "memoria", MEMORIA_LINES)
        lines.append(results["memoria"].pop("line"))
    if not set(sections) - {"memoria"}:
        return _finish(results, lines, out_dir)

    if not set(sections) - {"memoria", "browser"}:  # the browser section makes its own sites
        with LocalEmulator() as emulator:
            quiet = open(os.devnull, "w")  # noqa: SIM115 - closed with the pipeline below
            pipeline = LocalPipeline(
                emulator, SecretKey.generate(), PipelineOptions(), log_stream=quiet
            )
            try:
                print("browser: the institute's verifier, demo site and 4×…", flush=True)
                results["browser"] = browser_timing(pipeline, packages_dir / "browser")
                lines.extend(results["browser"].pop("lines"))
            finally:
                pipeline.close()
                quiet.close()
        return _finish(results, lines, out_dir)

    print("generating packages (BCS size and 4×)…", flush=True)
    bcs = generate_series(spec(cuts=TYPICAL_CUT + 1))
    warm_snapshot = bcs[TYPICAL_CUT - 2]
    base_snapshot, cut_snapshot = bcs[TYPICAL_CUT - 1], bcs[TYPICAL_CUT]
    big = generate_series(spec(casillas=4400, cuts=TYPICAL_CUT + 1))[TYPICAL_CUT]
    warm, base, cut = (
        s.write_package(packages_dir / "bcs") for s in (warm_snapshot, base_snapshot, cut_snapshot)
    )
    # the slot a cut refreshes holds the cut before the last: two cuts' changes
    since_slot = _changed(warm_snapshot, cut_snapshot)
    big_package = big.write_package(packages_dir / "4x")
    changed = _changed(base_snapshot, cut_snapshot)

    if "ingest" in sections:
        # 1. ingest compute
        ingest: dict[str, Any] = {}
        for label, package in (("bcs", cut), ("4x", big_package)):
            measured = ingest_compute(package)
            floor = unzip_sha256sum(package)
            ingest[label] = {
                "package_mb": round(package.stat().st_size / 1e6, 2),
                "files": measured["files"],
                "ours_seconds": round(measured["seconds"], 3),
                "unzip_sha256sum_seconds": round(floor, 3),
                "ratio": round(measured["seconds"] / floor, 2),
                "peak_rss_mb": round(measured["peak_rss_mb"], 1),
            }
            lines.append(
                f"ingest compute {label:>3} ({ingest[label]['files']} files, "
                f"{ingest[label]['package_mb']} MB): ours {measured['seconds']:.2f} s vs "
                f"unzip+sha256sum {floor:.2f} s (target ≤ 1.5×) — ratio "
                f"{measured['seconds'] / floor:.2f}×"
            )
        growth = ingest["4x"]["peak_rss_mb"] / ingest["bcs"]["peak_rss_mb"] - 1
        ingest["peak_memory_growth"] = round(growth, 3)
        peaks = ingest["bcs"]["peak_rss_mb"], ingest["4x"]["peak_rss_mb"]
        lines.append(
            f"ingest peak memory: {peaks[0]} MB → {peaks[1]} MB for a 4× package "
            f"(target < 20% growth) — growth {100 * growth:.1f}%"
        )
        results["ingest"] = ingest

    replication: dict[str, Any] = {"changed_files": len(changed), "files": len(cut_snapshot.files)}
    with tempfile.TemporaryDirectory() as work:
        log_path = Path(work) / "emulator.log"
        with LocalEmulator(log_path=log_path) as emulator:
            log = RequestLog(log_path)
            # full ingest on the emulator
            quiet = open(os.devnull, "w")  # noqa: SIM115 - closed with the pipeline below
            pipeline = LocalPipeline(
                emulator,
                SecretKey.generate(),
                PipelineOptions(difusores=difusores(1)),
                log_stream=quiet,
            )
            try:
                if "replication" in sections:
                    log.mark()
                    started = time.perf_counter()
                    pipeline.process(cut)
                    seconds = time.perf_counter() - started
                    staging_puts = sum(
                        1
                        for verb, path in log.since_mark()
                        if verb == "PUT" and "/objects/sha256/" in path
                    )
                    results.setdefault("ingest", {})["emulator"] = {
                        "seconds_to_delivered": round(seconds, 2),
                        "staging_puts": staging_puts,
                        "distinct_contents": len(set(cut_snapshot.files.values())) + 1,
                    }
                    distinct = len(set(cut_snapshot.files.values())) + 1
                    lines.append(
                        f"full ingest on the emulator: {seconds:.1f} s to delivered, "
                        f"{staging_puts} staging PUTs for {distinct} distinct contents (new "
                        "contents only; the emulator serves ~100 S3 req/s)"
                    )
                    for count in DIFUSOR_COUNTS:
                        print(f"replication to {count} difusores…", flush=True)
                        pipeline.options = PipelineOptions(difusores=difusores(count))
                        pipeline.reset()
                        log = RequestLog(log_path)
                        ours = our_cycle(pipeline, log, base, cut, warm)
                        baseline = baseline_cycle(
                            emulator, log, aws, count, base, cut, f"{count}-{int(time.time())}"
                        )
                        # the copies themselves are the floor; what else a delivery asks (the
                        # manifests and history it reads, removals, the pointer) is overhead
                        minimum = ours.copies
                        replication[str(count)] = {
                            "ours": ours.__dict__,
                            "baseline": baseline.__dict__,
                            "minimum_requests": minimum,
                            "over_minimum": round(ours.replication_requests / minimum - 1, 4),
                            "changed_files": len(changed),
                            "changed_since_slot": len(since_slot),
                            "copies_per_difusor": ours.copies / count,
                            "copies_per_changed_file": round(ours.copies / count / len(changed), 3),
                            "request_ratio": round(baseline.s3_requests / ours.s3_requests, 2),
                            "time_ratio": round(baseline.seconds / ours.seconds, 2),
                        }
                        lines.append(
                            f"replication to {count}: S3 requests ours {ours.s3_requests} vs "
                            f"baseline {baseline.s3_requests} (target ≥ 5× fewer at 3) — ratio "
                            f"{baseline.s3_requests / ours.s3_requests:.1f}×"
                        )
                        lines.append(
                            f"replication to {count}: wall ours {ours.seconds:.1f} s vs baseline "
                            f"{baseline.seconds:.1f} s (target ≥ 3× at 3) — ratio "
                            f"{baseline.seconds / ours.seconds:.1f}×"
                        )
                        lines.append(
                            f"copies per cut to {count}: {ours.copies // count} per difusor for "
                            f"{len(changed)} changed files ({len(since_slot)} since the slot's "
                            f"cut, plus the signed trio and two history entries; target ≤ 2×) — "
                            f"ratio {ours.copies / count / len(changed):.2f}×"
                        )
                        lines.append(
                            f"replication to {count}: our replication requests "
                            f"{ours.replication_requests} vs minimum {minimum} (target ≤ 1.05×) — "
                            f"ratio {ours.replication_requests / minimum:.3f}×"
                        )
                        lines.append(
                            f"latency to {count}: package landing → every signed manifest live "
                            f"(ingest staged {ours.staging_puts} new contents of "
                            f"{len(cut_snapshot.files)} files) — {ours.latency_seconds:.1f} s"
                        )
                if "serving" in sections:
                    print("serving: a reader polling while 8 cuts are published…", flush=True)
                    results["serving"] = serving(pipeline, bcs[:8], packages_dir / "serving")
                    lines.extend(results["serving"].pop("lines"))
                if "browser" in sections:
                    print(
                        "browser: the institute's verifier on the demo's site and 4×…", flush=True
                    )
                    results["browser"] = browser_timing(pipeline, packages_dir / "browser")
                    lines.extend(results["browser"].pop("lines"))
            finally:
                pipeline.close()
                quiet.close()
    if "replication" in sections:
        results["replication"] = replication
    shutil.rmtree(packages_dir, ignore_errors=True)
    return _finish(results, lines, out_dir)


def _finish(results: dict[str, Any], lines: list[str], out_dir: Path) -> dict[str, Any]:
    results["lines"] = lines
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _plot(results, out_dir)
    print("\n".join(lines))
    return results


def memoria_child(logs: Path, database: Path) -> None:
    """In its own process (its peak memory is its own): read every log file under
    ``logs`` and build the memoria's figures, working in ``database``."""
    from difusion.memoria.build import MemoriaInput, build_memoria
    from difusion.memoria.traffic import Period, TrafficLog

    spec = TrafficSpec()
    started = time.perf_counter()
    period = Period(spec.first_day, spec.last_day, spec.time_zone)
    log = TrafficLog(sorted(logs.rglob("*.gz")), period, database=database)
    loaded = time.perf_counter()
    data = build_memoria(
        log,
        None,
        MemoriaInput("bench", None, spec.election_day, (str(logs),), datetime(2024, 6, 21)),
    )
    print(
        json.dumps(
            {
                "lines": log.lines_read,
                "hits": data["key"]["hits"],
                "load_seconds": loaded - started,
                "seconds": time.perf_counter() - started,
                "peak_rss_mb": _peak_rss_mb(),
            }
        )
    )


def memoria_scale(work: Path, lines: int) -> dict[str, Any]:
    """``lines`` of synthetic CloudFront logs summarized by the memoria: lines per second
    and peak memory against the bound."""
    shutil.rmtree(work, ignore_errors=True)
    print(f"memoria: generating {lines:,} log lines…", flush=True)
    started = time.perf_counter()
    generated = generate_logs(TrafficSpec(requests=lines), work / "logs")
    generation = time.perf_counter() - started
    gzip_mb = sum(p.stat().st_size for p in generated.files) / 1e6
    print(f"memoria: summarizing {gzip_mb:.0f} MB of gzip…", flush=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "difusion.local.bench",
            "memoria-child",
            str(work / "logs"),
            str(work / "memoria.duckdb"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    measured = json.loads(out.strip().splitlines()[-1])
    shutil.rmtree(work, ignore_errors=True)
    rate = measured["lines"] / measured["seconds"]
    return {
        "lines": measured["lines"],
        "gzip_mb": round(gzip_mb, 1),
        "generation_seconds": round(generation, 1),
        "load_seconds": round(measured["load_seconds"], 1),
        "seconds": round(measured["seconds"], 1),
        "lines_per_second": round(rate),
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "memory_bound_mb": MEMORIA_MEMORY_BOUND_MB,
        "line": (
            f"memoria: {measured['lines']:,} log lines ({gzip_mb:.0f} MB gzip) summarized in "
            f"{measured['seconds']:.1f} s ({rate:,.0f} lines/s; DuckDB's load "
            f"{measured['load_seconds']:.1f} s), peak memory {measured['peak_rss_mb']:.0f} MB "
            f"(bound {MEMORIA_MEMORY_BOUND_MB} MB)"
        ),
    }


def serving(pipeline: LocalPipeline, cuts: list[Snapshot], out: Path) -> dict[str, Any]:
    """The torn-read probe and the page-load probe over ``cuts`` delivered to one difusor,
    then an audience on the final version: polls, torn polls, page loads (mixed ones, and
    those that straddled a switch: a batch is begun just before each switch and finished
    just after it), and CloudFront's requests to the bucket per viewer request in each cache
    mode (the local sites server's cache model)."""
    pipeline.options = PipelineOptions(difusores=difusores(1))
    pipeline.reset()
    packages = [cut.write_package(out) for cut in cuts]
    difusor = pipeline.deployment.difusores[0]
    site = pipeline.sites[difusor.difusor_id]
    # six readers at once, each reading the manifest, its signature, the home page and two
    # data files per poll
    probes = [Probe(site.url, pipeline.secret_key.public_key, sample=2) for _ in range(6)]
    finished = {"done": False}
    last = len(packages)
    pipeline.process(packages[0])

    def saw_the_last(probe: Probe) -> Callable[[], bool]:
        return lambda: finished["done"] and bool(probe.polls) and probe.polls[-1][1] == last

    pollers = [probe.run_until(saw_the_last(probe)) for probe in probes]
    # three visitors loading pages as a browser does, until the last cut and 1,000 loads
    key = pipeline.secret_key.public_key
    visitors = [PageLoads(site.url, key, seed=seed) for seed in range(3)]
    at_switch = PageLoads(site.url, key, seed=3)

    def enough() -> bool:
        return finished["done"] and sum(len(v.loads) for v in visitors) >= PAGE_LOADS

    loaders = [visitor.run_until(enough) for visitor in visitors]

    def begin_pages() -> list[Any]:
        return [at_switch.begin() for _ in range(PAGES_AT_EACH_SWITCH)]

    def finish_pages(begun: list[Any]) -> None:
        for page in begun:
            at_switch.finish(page)

    with at_switches(difusor.kvs_arn, begin_pages, finish_pages):
        for package in packages[1:]:
            pipeline.process(package)
    finished["done"] = True
    for poller in pollers + loaders:
        poller.join()
    pages = PageLoads(site.url, key)
    for loaded in [*visitors, at_switch]:
        pages.loads += loaded.loads
        pages.unreachable += loaded.unreachable
    probe = Probe(site.url, pipeline.secret_key.public_key)
    for each in probes:
        probe.polls += each.polls
        probe.torn += each.torn
        probe.moved += each.moved
    # an audience: the live version's pages and data, each asked 20 times
    manifest = Manifest.from_bytes(pipeline.site_objects(difusor.difusor_id)[MANIFEST_PATH])
    data = ["/" + f.path for f in manifest.files if f.path.endswith(".json")]
    paths = ["/", *data[:29]]
    literal = pipeline.serve_difusor(difusor, "literal", cache_mode="revalidate")
    ratios = {}
    for mode, served in (("versioned", site), ("revalidate", literal)):
        cache = served.cache
        assert cache is not None
        viewer, origin = cache.viewer_requests, cache.origin_gets
        for _ in range(20):
            for path in paths:
                with urllib.request.urlopen(served.url + path, timeout=10) as response:
                    response.read()
        ratios[mode] = round((cache.origin_gets - origin) / (cache.viewer_requests - viewer), 4)
    polls = len(probe.polls)
    # copies over the night: the first two cuts fill the two empty slots in full; from the
    # third on each refresh copies what changed since its slot's cut, two cuts' changes
    copied = {
        int(d["sequence"]): int(d["objects_copied"])
        for d in pipeline.ledger.items("DELIVERY#")
        if d["difusor_id"] == difusor.difusor_id and d["status"] == "delivered"
    }
    later = range(3, last + 1)
    night_copies = sum(copied[s] for s in later)
    night_changed = sum(len(_changed(cuts[s - 2], cuts[s - 1])) for s in later)
    return {
        "cuts": last,
        "night_copies": night_copies,
        "night_changed_files": night_changed,
        "polls": polls,
        "torn": len(probe.torn),
        "moved": probe.moved,
        "versions_seen": sorted({v for v, _ in probe.polls if v is not None}),
        "page_loads": len(pages.loads),
        "page_loads_mixed": len(pages.mixed),
        "page_loads_straddling": len(pages.straddling),
        "page_loads_unreachable": pages.unreachable,
        "page_load_requests": sum(load.requests for load in pages.loads),
        "origin_gets_per_viewer_request": ratios,
        "lines": [
            f"torn-read probe: {polls} polls over {last} cuts, {len(probe.torn)} saw two "
            f"versions at once (target 0 over ≥ 1,000 polls; {probe.moved} met a retired "
            f"version and were redirected)",
            f"page-load probe: {len(pages.loads)} page loads as a browser makes them (the page, "
            f"its stylesheet, script, data and acta images by the site's absolute URLs) over "
            f"{last} cuts, {len(pages.straddling)} straddling a switch, {len(pages.mixed)} mixed "
            f"two cuts (target 0 of ≥ 1,000, ≥ 200 straddling)",
            f"copies over cuts 3–{last}: {night_copies} for {night_changed} changed files "
            f"(each refresh: the changes since its slot's cut, plus the signed trio and two "
            f"history entries; target ≤ 2×) — ratio {night_copies / night_changed:.2f}×",
            f"edge to origin: {ratios['versioned']} bucket GETs per viewer request with "
            f"versions kept at the edge, {ratios['revalidate']} when every request is "
            f"revalidated (target far below 1)",
        ],
    }


def browser_timing(pipeline: LocalPipeline, out: Path) -> dict[str, Any]:
    """The institute's verifier (``verificador.html``) in headless Chromium, checking a whole
    site cross-origin, every file and every acta: the demo's site (its acta images, 6 KB) and
    one 4× its size. Each is read through the emulated edge (the local sites server runs the
    viewer-request function and reads the KeyValueStore pointer for every request: the
    emulator's throughput, not the browser's), then as a copy from a plain static server
    (the browser's own cost, as from an edge that holds the version). The time is Chromium's
    wall time less that of the same page with nothing to check."""
    results: dict[str, Any] = {"lines": []}
    for label, casillas in (("demo", SeriesSpec().casillas), ("4x", 4 * SeriesSpec().casillas)):
        snapshot = generate_series(SeriesSpec(casillas=casillas, cuts=TYPICAL_CUT + 1))[-1]
        pipeline.options = PipelineOptions(difusores=difusores(1))
        pipeline.reset()
        pipeline.process(snapshot.write_package(out / label))
        pipeline.run_monitor_period()  # the board and the verifier on the portal
        difusor = pipeline.deployment.difusores[0].difusor_id
        idle = f"{pipeline.portal_url}/verificador.html"
        page = f"{idle}?difusor={difusor}"
        baseline = _wall(idle, 30_000)[0]
        timings: dict[str, Any] = {"files": len(snapshot.files) + 1}
        seconds, result = _wall(page, 600_000)
        if result.state != "verificado":
            raise RuntimeError(f"the verifier did not verify the {label} site: {result.verdict}")
        timings["edge_seconds"] = round(max(seconds - baseline, 0.0), 2)
        timings["edge_page_seconds"] = result.seconds
        actas = re.search(r"([\d,]+) actas revisadas", result.dom)
        timings["actas"] = int(actas[1].replace(",", "")) if actas else None
        # The same files from a plain static server (no edge function, no emulator behind
        # it): what the browser's own work costs, as from an edge that has the version.
        copy = out / f"{label}-copy"
        pipeline.download_site(difusor, copy)
        with _static_site(copy, pipeline.portal_url) as static:
            seconds, result = _wall(f"{idle}?sitio={static}/", 600_000)
        if result.state != "verificado":
            raise RuntimeError(f"the verifier did not verify the {label} copy: {result.verdict}")
        timings["static_seconds"] = round(max(seconds - baseline, 0.0), 2)
        timings["static_page_seconds"] = result.seconds
        timings["static_longest_task_ms"] = result.longest_task_ms
        results[label] = timings
        results["lines"].append(
            f"institute's verifier in Chromium, {label} site ({timings['files']:,} files, "
            f"{timings['actas']:,} actas): {timings['static_seconds']:.1f} s from a static "
            f"server (target: seconds; longest main-thread task "
            f"{timings['static_longest_task_ms']} ms); through the emulated edge "
            f"{timings['edge_seconds']:.1f} s (its function and KeyValueStore read per request)"
        )
    return results


@contextlib.contextmanager
def _static_site(root: Path, portal: str) -> Iterator[str]:
    """``root`` over HTTP on loopback, readable from ``portal`` (CORS), as a plain server."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def end_headers(self) -> None:
            self.send_header("Access-Control-Allow-Origin", portal)
            self.send_header("Cache-Control", "no-cache")
            super().end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _wall(url: str, budget_ms: int) -> tuple[float, browser.PageResult]:
    """Chromium's wall time to open ``url`` and finish its scripts, and what it showed."""
    started = time.perf_counter()
    result = browser.open_page(url, budget_ms=budget_ms, timeout=900)
    return time.perf_counter() - started, result


def _changed(before: Snapshot, after: Snapshot) -> list[str]:
    return [p for p, d in after.files.items() if before.files.get(p) != d]


def _plot(results: dict[str, Any], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "replication" in results:
        _plot_replication(results["replication"], out_dir, plt)
    if "bcs" in results.get("ingest", {}):
        _plot_ingest(results["ingest"], out_dir, plt)


def _plot_replication(replication: dict[str, Any], out_dir: Path, plt: Any) -> None:
    counts = [c for c in DIFUSOR_COUNTS if str(c) in replication]
    figure, (seconds, requests) = plt.subplots(1, 2, figsize=(11, 4))
    for side, style in (("ours", "o-"), ("baseline", "s--")):
        seconds.plot(
            counts, [replication[str(c)][side]["seconds"] for c in counts], style, label=side
        )
        requests.plot(
            counts, [replication[str(c)][side]["s3_requests"] for c in counts], style, label=side
        )
    requests.plot(
        counts, [replication[str(c)]["minimum_requests"] for c in counts], ":", label="minimum"
    )
    seconds.set(title="Time per cycle", xlabel="difusores", ylabel="seconds")
    requests.set(title="S3 requests per cycle", xlabel="difusores", ylabel="requests")
    for axis in (seconds, requests):
        axis.legend()
        axis.set_xticks(counts)
    figure.tight_layout()
    figure.savefig(out_dir / "replication.png", dpi=110)


def _plot_ingest(ingest: dict[str, Any], out_dir: Path, plt: Any) -> None:
    figure, (time_axis, memory) = plt.subplots(1, 2, figsize=(11, 4))
    sizes = [ingest[label]["package_mb"] for label in ("bcs", "4x")]
    time_axis.plot(sizes, [ingest[lb]["ours_seconds"] for lb in ("bcs", "4x")], "o-", label="ours")
    time_axis.plot(
        sizes,
        [ingest[lb]["unzip_sha256sum_seconds"] for lb in ("bcs", "4x")],
        "s--",
        label="unzip + sha256sum",
    )
    memory.plot(sizes, [ingest[lb]["peak_rss_mb"] for lb in ("bcs", "4x")], "o-", label="ours")
    time_axis.set(title="Ingest compute", xlabel="package MB", ylabel="seconds")
    memory.set(title="Ingest peak memory", xlabel="package MB", ylabel="MB", ylim=(0, None))
    for axis in (time_axis, memory):
        axis.legend()
    figure.tight_layout()
    figure.savefig(out_dir / "ingest.png", dpi=110)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "ingest-child":
        ingest_compute_child(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "memoria-child":
        memoria_child(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        # [AWS_CLI] [--small] [--only SECTION,...]
        arguments = sys.argv[1:]
        only: tuple[str, ...] = SECTIONS
        if "--only" in arguments:
            at = arguments.index("--only")
            only = tuple(arguments[at + 1].split(","))
            del arguments[at : at + 2]
            if not set(only) <= set(SECTIONS):
                sys.exit(f"--only takes some of {','.join(SECTIONS)}, not {','.join(only)}")
        small = "--small" in arguments
        arguments = [a for a in arguments if a != "--small"]
        aws_cli = Path(arguments[0]) if arguments else Path(".venv-awscli/bin/aws")
        main(Path("out/bench"), aws_cli, small=small, sections=only)
