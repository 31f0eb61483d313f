"""``difusion``: the operators' command line.

    difusion keys create [--out DIR]            a minisign key pair (prep.key, prep.pub)
    difusion keys store --secret-id ID KEY      put the secret key into Secrets Manager
    difusion check PACKAGE...                   validate packages offline, as ingest would
    difusion submit PACKAGE --bucket B          upload a package to the origin's incoming/
    difusion difusor register --table T ...     add or update a difusor in the registry
    difusion difusor list --table T
    difusion difusor reinstate ID --reason R    end a suspension; redeliver everything to it
    difusion monitor period                     run one period of the continuity monitor now
    difusion preflight --outputs F ...          read-only checks of a real deployment
    difusion ledger --table T --election E      snapshots and deliveries as recorded
    difusion window start --state-machine ARN   start the window's timer (from the config)
    difusion window status|close --table T ...  the window's state; close it early
    difusion verify TARGET --public-key KEY     prove a copy is what the institute signed
    difusion generate --out DIR [--small]       a PREP snapshot series, as packages
    difusion local run PACKAGE... [--json]      run packages through the embedded default
    difusion demo [--out DIR]                   a whole night on the embedded default

AWS commands use the standard AWS configuration (profile, region, credentials).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from difusion.errors import PackageRejected, RejectionCode
from difusion.preflight.command import add_preflight_parser

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_REJECTED = 3
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USAGE
    return int(args.run(args) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="difusion", description="Signed, verifiable delivery of PREP snapshots."
    )
    commands = parser.add_subparsers(title="commands")

    keys = commands.add_parser("keys", help="signing keys").add_subparsers(title="keys")
    create = keys.add_parser("create", help="create a minisign key pair")
    create.add_argument("--out", type=Path, default=Path("."))
    create.add_argument("--force", action="store_true", help="overwrite existing files")
    create.set_defaults(run=_keys_create)
    store = keys.add_parser("store", help="store the secret key in Secrets Manager")
    store.add_argument("key", type=Path, help="prep.key")
    store.add_argument("--secret-id", required=True)
    store.set_defaults(run=_keys_store)

    check = commands.add_parser("check", help="validate packages offline, as ingest would")
    check.add_argument("packages", nargs="+", type=Path)
    check.add_argument("--election", default="DIP_LOC_BCS")
    check.add_argument("--time-zone", default="America/Mazatlan")
    check.add_argument("--json", action="store_true")
    check.set_defaults(run=_check)

    submit = commands.add_parser("submit", help="upload a package to the origin bucket")
    submit.add_argument("package", type=Path)
    submit.add_argument("--bucket", required=True)
    submit.add_argument("--election", default="DIP_LOC_BCS")
    submit.add_argument("--time-zone", default="America/Mazatlan")
    submit.set_defaults(run=_submit)

    difusor = commands.add_parser("difusor", help="the difusor registry").add_subparsers()
    register = difusor.add_parser("register", help="add or update a difusor")
    register.add_argument("--table", required=True, help="registry table name")
    register.add_argument(
        "--from-outputs",
        type=Path,
        help="the JSON `cdk deploy --outputs-file` wrote for the difusor stack",
    )
    for field in (
        "id",
        "name",
        "account",
        "bucket",
        "distribution",
        "kvs-arn",
        "role-arn",
        "external-id",
        "url",
    ):
        register.add_argument(f"--{field}")
    register.add_argument("--status", default="active", choices=["active", "suspended", "retired"])
    register.set_defaults(run=_difusor_register)
    reinstate = difusor.add_parser(
        "reinstate", help="reinstate a suspended difusor and redeliver the current snapshot"
    )
    reinstate.add_argument("difusor_id")
    reinstate.add_argument("--reason", required=True, help="recorded in the incident")
    _institute_arguments(reinstate)
    reinstate.set_defaults(run=_difusor_reinstate)

    monitor = commands.add_parser("monitor", help="the continuity monitor").add_subparsers()
    period = monitor.add_parser("period", help="run one period now (as the schedule does)")
    _institute_arguments(period)
    period.add_argument("--json", action="store_true")
    period.set_defaults(run=_monitor_period)

    snapshot = commands.add_parser("snapshot", help="accepted snapshots").add_subparsers()
    withdraw = snapshot.add_parser(
        "withdraw",
        help="withdraw an accepted snapshot: a signed entry of the chain says so, and every "
        "difusor moves on to the newest valid snapshot",
    )
    withdraw.add_argument("snapshot_id")
    withdraw.add_argument("--reason", required=True, help="signed and public: say why")
    withdraw.add_argument(
        "--wait", type=float, default=120.0, help="seconds to wait for the entry (0: do not)"
    )
    _institute_arguments(withdraw)
    withdraw.set_defaults(run=_snapshot_withdraw)

    listing = difusor.add_parser("list", help="list registered difusores")
    listing.add_argument("--table", required=True)
    listing.set_defaults(run=_difusor_list)

    ledger = commands.add_parser("ledger", help="show snapshots and deliveries")
    ledger.add_argument("--table", help="the ledger table (required)")
    ledger.add_argument("--election", help="the election's id (required)")
    ledger.add_argument("--json", action="store_true")
    ledger.set_defaults(run=_ledger)
    export = ledger.add_subparsers(title="ledger").add_parser(
        "export", help="a difusor's part of the ledger, for its memoria técnica"
    )
    export.add_argument("--difusor", required=True)
    export.add_argument("--table", required=True)
    export.add_argument("--election", required=True)
    export.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    export.set_defaults(run=_ledger_export)

    window = commands.add_parser("window", help="the publication window").add_subparsers()
    start = window.add_parser("start", help="start the timer that opens and closes the window")
    start.add_argument("--state-machine", required=True, help="the WindowTimerArn output")
    start.add_argument("--config", type=Path, default=Path("config/institute.json"))
    start.set_defaults(run=_window_start)
    status = window.add_parser("status", help="show the window's state")
    status.add_argument("--table", required=True)
    status.add_argument("--election", required=True)
    status.set_defaults(run=_window_status)
    close = window.add_parser(
        "close", help="close early: 100%% of actas registered (RE art. 353.6)"
    )
    close.add_argument("--table", required=True)
    close.add_argument("--election", required=True)
    close.add_argument("--reason", required=True, help="recorded in the ledger")
    close.set_defaults(run=_window_close)

    check_site = commands.add_parser(
        "verify",
        help="verify a difusor's site (URL), a downloaded copy (directory) or s3://bucket",
        description="Exit codes: 0 verified; 10 unreachable; 11 bad or missing signature; "
        "14 stale, forked or broken history; 12 altered, missing or extra files; 13 an acta "
        "image that does not match its CODIGO_INTEGRIDAD (or is missing); 2 usage.",
    )
    check_site.add_argument("target", help="https://… (http:// only on loopback), s3://…, or DIR")
    check_site.add_argument(
        "--public-key", required=True, help="the institute's prep.pub, or its key string"
    )
    check_site.add_argument(
        "--since", type=Path, help="a manifest.json seen earlier: the site must extend it"
    )
    check_site.add_argument(
        "--history", action="store_true", help="replay the whole chain of manifests"
    )
    check_site.add_argument("--jobs", type=int, default=8, help="parallel fetches (8)")
    check_site.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check_site.add_argument("--quiet", action="store_true", help="no progress bar, one line")
    check_site.set_defaults(run=_verify)

    generate = commands.add_parser("generate", help="write a PREP snapshot series")
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--small", action="store_true", help="test-sized series")
    generate.add_argument("--casillas", type=int)
    generate.add_argument("--cuts", type=int)
    generate.add_argument("--format", choices=["zip", "tar.gz"], default="zip")
    generate.set_defaults(run=_generate)

    logs = commands.add_parser(
        "generate-logs", help="write synthetic CloudFront logs of a difusor's site"
    )
    logs.add_argument("--out", type=Path, required=True, help="folder for cloudfront/*.gz")
    logs.add_argument("--requests", type=int, default=20_000, help="lines in all (20000)")
    logs.add_argument("--desde", type=date.fromisoformat, default=date(2024, 6, 1))
    logs.add_argument("--hasta", type=date.fromisoformat, default=date(2024, 6, 10))
    logs.add_argument("--jornada", type=date.fromisoformat, default=date(2024, 6, 2))
    logs.add_argument("--zona", default="America/Mazatlan", help="the election's time zone")
    logs.add_argument("--distribution", default="E2DIFUSOREXAMPLE")
    logs.add_argument("--seed", type=int, default=2024)
    logs.set_defaults(run=_generate_logs)

    memoria = commands.add_parser(
        "memoria", help="a difusor's memoria técnica from its CloudFront logs and the ledger"
    )
    memoria.add_argument("--difusor", required=True)
    memoria.add_argument(
        "--logs", required=True, help="a folder of CloudFront log files, or s3://bucket/prefix/"
    )
    memoria.add_argument("--desde", type=date.fromisoformat, required=True, help="AAAA-MM-DD")
    memoria.add_argument("--hasta", type=date.fromisoformat, required=True, help="AAAA-MM-DD")
    memoria.add_argument("--zona", default="America/Mazatlan", help="the election's time zone")
    memoria.add_argument("--ledger", type=Path, help="the file `difusion ledger export` wrote")
    memoria.add_argument("--jornada", type=date.fromisoformat, help="election day (AAAA-MM-DD)")
    memoria.add_argument("--comentarios", type=Path, help="the difusor's own words (text)")
    memoria.add_argument("--out", type=Path, required=True)
    memoria.add_argument("--sin-pdf", action="store_true", help="HTML, JSON and figures only")
    memoria.add_argument(
        "--database", type=Path, help="a DuckDB file to work in (logs larger than memory)"
    )
    memoria.set_defaults(run=_memoria)

    local = commands.add_parser("local", help="the embedded default").add_subparsers()
    run = local.add_parser("run", help="run packages through the embedded default")
    run.add_argument("packages", nargs="+", type=Path)
    run.add_argument("--json", action="store_true", help="print a JSON report")
    run.add_argument("--work-dir", type=Path, help="keep logs here (default: a temp dir)")
    run.add_argument("--election", default="DIP_LOC_BCS")
    run.set_defaults(run=_local_run)

    demo = commands.add_parser("demo", help="a whole night on the embedded default")
    demo.add_argument("--out", type=Path, default=Path("out/demo"))
    demo.add_argument("--casillas", type=int)
    demo.add_argument("--cuts", type=int)
    demo.set_defaults(run=_demo)
    add_preflight_parser(commands)
    return parser


def _institute_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outputs",
        type=Path,
        required=True,
        help="the JSON `cdk deploy --outputs-file` wrote for the institute stack",
    )
    parser.add_argument("--config", type=Path, default=Path("config/institute.json"))


def _stack_outputs(path: Path) -> dict[str, str]:
    """The institute stack's outputs, from the file `cdk deploy --outputs-file` wrote."""
    raw = json.loads(path.read_text())
    outputs: dict[str, str] = {}
    for value in [v for v in raw.values() if isinstance(v, dict)] or [raw]:
        outputs.update(value)
    return outputs


def _monitor_settings(args: argparse.Namespace) -> Any:
    """The monitor function's settings, from the deployed stack's outputs and its config."""
    from difusion.settings import MonitorSettings
    from stacks.config import InstituteConfig, load_json

    config = InstituteConfig.from_json(load_json(args.config))
    outputs = _stack_outputs(args.outputs)
    names = {
        "ORIGIN_BUCKET": "OriginBucketName",
        "LEDGER_TABLE": "LedgerTableName",
        "REGISTRY_TABLE": "RegistryTableName",
        "IDEMPOTENCY_TABLE": "IdempotencyTableName",
        "DELIVERY_QUEUE_URL": "DeliveryQueueUrl",
    }
    missing = [output for output in names.values() if output not in outputs]
    if missing:
        raise SystemExit(f"error: {args.outputs} lacks {', '.join(missing)}")
    env = {
        **{variable: outputs[output] for variable, output in names.items()},
        **config.environment("monitor"),  # as the stack gives it: the pinned key included
    }
    return MonitorSettings.from_env(env)


def _difusor_reinstate(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import continuity_service
    from difusion.adapters.registry import StatusUnchanged, UnknownDifusor

    service = continuity_service(_monitor_settings(args))
    try:
        request = service.reinstate(args.difusor_id, args.reason)
    except (StatusUnchanged, UnknownDifusor) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    what = (
        f"full redelivery of {request.snapshot_id} requested ({request.reason})"
        if request
        else "nothing accepted yet: it gets the next snapshot"
    )
    print(f"{args.difusor_id}: reinstated — {what}")
    return EXIT_OK


def _snapshot_withdraw(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import client, dynamodb, utc_now
    from difusion.adapters.ledger import Ledger
    from difusion.adapters.queues import SignQueue
    from difusion.services.sign import accepted_entries, withdrawal_refusal
    from stacks.config import InstituteConfig, load_json

    config = InstituteConfig.from_json(load_json(args.config))
    outputs = _stack_outputs(args.outputs)
    missing = [o for o in ("LedgerTableName", "SignQueueUrl") if o not in outputs]
    if missing:
        print(f"error: {args.outputs} lacks {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    ledger = Ledger(dynamodb(), outputs["LedgerTableName"], config.election_id)
    entries = accepted_entries(ledger.snapshot_records())
    target = next((e for e in entries.values() if e.snapshot_id == args.snapshot_id), None)
    refusal = withdrawal_refusal(args.snapshot_id, target, args.reason)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    if target is not None and target.withdrawn_at:
        print(
            f"{args.snapshot_id}: already withdrawn by the signed entry "
            f"#{target.withdrawn_by_sequence} ({target.withdrawal_reason or ''})"
        )
        return EXIT_OK
    SignQueue(client("sqs"), outputs["SignQueueUrl"]).send_withdrawal(
        config.election_id, args.snapshot_id, args.reason
    )
    print(f"{args.snapshot_id}: withdrawal requested — {args.reason}")
    deadline = utc_now().timestamp() + args.wait
    while args.wait > 0:
        record = ledger.snapshot(args.snapshot_id) or {}
        if record.get("withdrawn_at"):
            by = int(record["withdrawn_by_sequence"])
            print(f"{args.snapshot_id}: withdrawn by the signed entry #{by}; difusores move to it")
            return EXIT_OK
        if record.get("withdrawal_gave_up"):
            print(f"error: the withdrawal failed: {record['withdrawal_error']}", file=sys.stderr)
            return EXIT_FAILURE
        if utc_now().timestamp() > deadline:
            print("the withdrawal is queued; `difusion ledger` shows when it is done")
            return EXIT_OK
        time.sleep(1.0)
    return EXIT_OK


def _monitor_period(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import continuity_service

    report = continuity_service(_monitor_settings(args)).run_period()
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(f"period {report.period}, window {report.window}")
        for check in report.checks:
            print(f"  {check.difusor_id:24} {check.outcome:15} {check.detail}")
        for action in report.actions:
            print(f"  action: {action}")
        if report.finalized:
            print(f"  closing record: {report.finalized['record_key']}")
    return EXIT_OK


# --- keys ------------------------------------------------------------------------------


def _keys_create(args: argparse.Namespace) -> int:
    from difusion.signing import SecretKey

    secret_path, public_path = args.out / "prep.key", args.out / "prep.pub"
    if not args.force and (secret_path.exists() or public_path.exists()):
        print(f"error: {secret_path} or {public_path} exists; use --force", file=sys.stderr)
        return EXIT_USAGE
    args.out.mkdir(parents=True, exist_ok=True)
    key = SecretKey.generate()
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(key.to_file())
    public_path.write_text(key.public_key.to_file())
    print(f"key id      {key.key_id_text}")
    print(f"fingerprint {key.public_key.fingerprint}")
    print(f"secret key  {secret_path} (store it with `difusion keys store`, then delete it)")
    print(f"public key  {public_path} (publish it)")
    return EXIT_OK


def _keys_store(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import client
    from difusion.adapters.keystore import SecretsManagerKeyStore
    from difusion.signing import SecretKey

    key = SecretKey.from_file(args.key.read_text())
    SecretsManagerKeyStore(client("secretsmanager"), args.secret_id).store(key)
    print(f"stored key {key.key_id_text} in secret {args.secret_id}")
    return EXIT_OK


# --- packages --------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import utc_now
    from difusion.archive import ArchiveLimits
    from difusion.package_name import parse_package_name, refuse_future_cut
    from difusion.prep_data import scan_package

    results: list[dict[str, Any]] = []
    for package in args.packages:
        try:
            name = parse_package_name(package.name, args.time_zone)
            if name.election != args.election:
                raise PackageRejected(
                    RejectionCode.WRONG_ELECTION,
                    f"package is for election {name.election}, not {args.election}",
                )
            refuse_future_cut(name, utc_now())
            with package.open("rb") as stream:
                entries = scan_package(stream, name.archive_format, ArchiveLimits())
            results.append(
                {
                    "package": package.name,
                    "status": "valid",
                    "files": len(entries),
                    "bytes": sum(e.size for e in entries),
                }
            )
        except PackageRejected as rejection:
            results.append(
                {
                    "package": package.name,
                    "status": "rejected",
                    "code": str(rejection.code),
                    "reason": rejection.reason,
                }
            )
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    else:
        for r in results:
            detail = (
                f"{r['files']} files, {r['bytes']} bytes"
                if r["status"] == "valid"
                else f"{r['code']}: {r['reason']}"
            )
            print(f"{r['package']}: {r['status']} — {detail}")
    return EXIT_OK if all(r["status"] == "valid" for r in results) else EXIT_REJECTED


def _submit(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import client
    from difusion.adapters.origin import INCOMING_PREFIX
    from difusion.package_name import parse_package_name

    try:
        parse_package_name(args.package.name, args.time_zone)
    except PackageRejected as rejection:
        print(f"error: {rejection.reason}", file=sys.stderr)
        return EXIT_REJECTED
    key = INCOMING_PREFIX + args.package.name
    client("s3").upload_file(str(args.package), args.bucket, key)
    print(f"uploaded s3://{args.bucket}/{key}; follow it with `difusion ledger`")
    return EXIT_OK


# --- registry and ledger ---------------------------------------------------------------

_OUTPUT_FIELDS = {
    "DifusorId": "id",
    "DifusorName": "name",
    "AccountId": "account",
    "SiteBucketName": "bucket",
    "DistributionId": "distribution",
    "KeyValueStoreArn": "kvs-arn",
    "DeliveryRoleArn": "role-arn",
    "ExternalId": "external-id",
    "PublicUrl": "url",
}


def _difusor_register(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import dynamodb
    from difusion.adapters.registry import DifusorRegistry
    from difusion.models import Difusor, DifusorStatus

    values = {field: getattr(args, field.replace("-", "_")) for field in _OUTPUT_FIELDS.values()}
    if args.from_outputs:
        outputs = json.loads(args.from_outputs.read_text())
        # `cdk deploy --outputs-file` nests outputs under the stack name.
        stacks = [v for v in outputs.values() if isinstance(v, dict)] or [outputs]
        for output, field in _OUTPUT_FIELDS.items():
            for stack in stacks:
                if output in stack and not values.get(field):
                    values[field] = stack[output]
    missing = [f"--{field}" for field, value in values.items() if not value]
    if missing:
        print(f"error: missing {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    difusor = Difusor(
        difusor_id=values["id"],
        name=values["name"],
        account_id=values["account"],
        bucket=values["bucket"],
        distribution_id=values["distribution"],
        role_arn=values["role-arn"],
        external_id=values["external-id"],
        public_url=values["url"],
        kvs_arn=values["kvs-arn"],
        status=DifusorStatus(args.status),
    )
    DifusorRegistry(dynamodb(), args.table).put(difusor)
    print(f"registered {difusor.difusor_id} ({difusor.account_id}, {difusor.public_url})")
    return EXIT_OK


def _difusor_list(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import dynamodb
    from difusion.adapters.registry import DifusorRegistry

    for d in DifusorRegistry(dynamodb(), args.table).all():
        print(f"{d.difusor_id:24} {d.status:10} {d.account_id} {d.bucket} {d.public_url}")
    return EXIT_OK


def _ledger_export(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import dynamodb, utc_now
    from difusion.adapters.ledger import Ledger
    from difusion.memoria.ledger_export import history_of

    ledger = Ledger(dynamodb(), args.table, args.election)
    history = history_of(
        args.difusor,
        args.election,
        utc_now(),
        ledger.delivery_records(),
        ledger.check_records(),
        ledger.incident_records(),
        ledger.upstream_incident_records(),
    )
    if not (history.deliveries or history.checks or history.incidents):
        print(
            f"error: the ledger of {args.election} has nothing of {args.difusor!r} "
            "(no delivery, check or incident)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(history.to_json(), indent=2, ensure_ascii=False, default=str) + "\n",
        encoding="utf-8",
    )
    print(
        f"{args.out}: {len(history.deliveries)} deliveries, {len(history.checks)} checks, "
        f"{len(history.incidents)} incidents of {args.difusor}, "
        f"{len(history.upstream_incidents)} upstream"
    )
    return EXIT_OK


def _ledger(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import dynamodb
    from difusion.adapters.ledger import Ledger
    from difusion.records import RejectionRecord, SnapshotRecord, as_item

    if not (args.table and args.election):
        print("error: difusion ledger needs --table and --election", file=sys.stderr)
        return EXIT_USAGE
    ledger = Ledger(dynamodb(), args.table, args.election)
    # refused re-uploads are listed with the snapshots, as their own rows
    snapshots: list[SnapshotRecord | RejectionRecord] = [
        *ledger.snapshot_records(),
        *ledger.rejection_records(),
    ]
    deliveries = ledger.delivery_records()
    if args.json:
        print(
            json.dumps(
                {
                    "snapshots": [as_item(s) for s in snapshots],
                    "deliveries": [as_item(d) for d in deliveries],
                },
                indent=2,
                ensure_ascii=False,
                default=str,
            )
        )
        return EXIT_OK

    def shown(value: object) -> object:
        return "-" if value is None else value

    for s in sorted(snapshots, key=lambda s: s.snapshot_id):
        detail = f"{s.rejection_code or ''} {s.rejection_reason or ''}".strip()
        sequence, files = (
            (s.sequence, s.file_count) if isinstance(s, SnapshotRecord) else (None, None)
        )
        print(
            f"{s.snapshot_id:40} {s.status or '':10} "
            f"seq={shown(sequence)} files={shown(files)} {detail}"
        )
        for d in deliveries:
            if d.snapshot_id == s.snapshot_id:
                print(
                    f"    {d.difusor_id:24} {d.status or '':12} "
                    f"copied={shown(d.objects_copied)} attempts={shown(d.attempts)} "
                    f"{d.last_error or ''}"
                )
    return EXIT_OK


# --- the window ------------------------------------------------------------------------


def _window_start(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import client
    from difusion.window_timer import execution_input, execution_name
    from stacks.config import InstituteConfig, load_json

    config = InstituteConfig.from_json(load_json(args.config))
    name = execution_name(config.election_id, config.window.opening)
    client("stepfunctions").start_execution(
        stateMachineArn=args.state_machine,
        name=name,
        input=execution_input(config.window.opening, config.window.closing),
    )
    print(
        f"timer {name} started: opens {config.window.opening.isoformat()}, "
        f"closes {config.window.closing.isoformat()}"
    )
    return EXIT_OK


def _window_status(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import dynamodb
    from difusion.adapters.ledger import Ledger

    record = Ledger(dynamodb(), args.table, args.election).window()
    closed = f", closed at {record.closed_at.isoformat()}" if record.closed_at else ""
    early = " (early)" if record.closed_early else ""
    print(f"{args.election}: {record.state}{closed}{early}")
    return EXIT_OK


def _window_close(args: argparse.Namespace) -> int:
    from difusion.adapters.factory import dynamodb, utc_now
    from difusion.adapters.ledger import Ledger, WindowNotOpen

    try:
        Ledger(dynamodb(), args.table, args.election).close_early(utc_now(), args.reason)
    except WindowNotOpen:
        print("error: the window is not open; only an open window closes early", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.election}: closed early — {args.reason}")
    return EXIT_OK


# --- verification ----------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from difusion.adapters.site_sources import open_source
    from difusion.errors import KeyFormatError, ManifestInvalid
    from difusion.manifest import Manifest
    from difusion.signing import PublicKey
    from difusion.verification import verify_site

    try:
        key_path = Path(args.public_key)
        key_text = key_path.read_text() if key_path.is_file() else args.public_key
        public_key = PublicKey.from_text(key_text)
        since = Manifest.from_bytes(args.since.read_bytes()) if args.since else None
        source = open_source(args.target)
    except (KeyFormatError, ManifestInvalid, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json or args.quiet:
        result = verify_site(source, public_key, since=since, history=args.history, jobs=args.jobs)
    else:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"hashing {source.label}", total=None)
            result = verify_site(
                source,
                public_key,
                since=since,
                history=args.history,
                jobs=args.jobs,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        return int(result.verdict)
    if result.ok:
        history = f", history of {result.history_checked} manifests" if args.history else ""
        print(
            f"verified: {source.label} serves {result.snapshot_id} (#{result.sequence}), "
            f"{result.files} files, {result.actas_checked} actas against their "
            f"CODIGO_INTEGRIDAD{history}"
        )
        if not args.quiet:
            print(f"  key fingerprint {public_key.fingerprint}")
            print(f"  {result.trusted_comment}")
            for w in result.withdrawals:
                restores = f"#{w['restores']}" if w["restores"] is not None else "nothing"
                print(
                    f"  withdrawn: #{w['sequence']} ({w['snapshot_id']}) by signed entry "
                    f"#{w['entry']}, which publishes {restores} again — {w['reason']}"
                )
        return EXIT_OK
    print(f"NOT VERIFIED ({result.verdict.name.lower()}): {source.label}")
    if not args.quiet:
        for problem in result.problems[:50]:
            print(f"  {problem}")
        if len(result.problems) > 50:
            print(f"  … and {len(result.problems) - 50} more (--json lists all)")
    return int(result.verdict)


# --- local -----------------------------------------------------------------------------


def _generate(args: argparse.Namespace) -> int:
    from difusion.generator import SeriesSpec, generate_series

    spec = SeriesSpec.small() if args.small else SeriesSpec()
    overrides = {k: v for k, v in (("casillas", args.casillas), ("cuts", args.cuts)) if v}
    if overrides:
        spec = SeriesSpec(**{**spec.__dict__, **overrides})
    for snapshot in generate_series(spec):
        print(snapshot.write_package(args.out, args.format))
    return EXIT_OK


def _generate_logs(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from difusion.memoria.synthetic import TrafficSpec, generate_logs

    if args.requests < 1 or args.hasta < args.desde:
        print("error: --requests must be positive and --hasta not before --desde", file=sys.stderr)
        return EXIT_USAGE
    if not args.desde <= args.jornada <= args.hasta:
        print("error: --jornada must fall within --desde..--hasta", file=sys.stderr)
        return EXIT_USAGE
    try:
        ZoneInfo(args.zona)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"error: no such time zone: {args.zona}", file=sys.stderr)
        return EXIT_USAGE
    spec = TrafficSpec(
        requests=args.requests,
        first_day=args.desde,
        last_day=args.hasta,
        election_day=args.jornada,
        time_zone=args.zona,
        distribution=args.distribution,
        seed=args.seed,
    )
    logs = generate_logs(spec, args.out)
    print(
        f"{args.out / 'cloudfront'}: {len(logs.files)} files, {logs.lines} requests "
        f"({logs.late_lines} delivered late)"
    )
    return EXIT_OK


def _memoria(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from difusion.adapters.factory import utc_now
    from difusion.memoria.build import MemoriaInput
    from difusion.memoria.command import LogSourceError, PdfUnavailable, write_memoria
    from difusion.memoria.ledger_export import LedgerExportError, read_history
    from difusion.memoria.traffic import Period

    try:
        ZoneInfo(args.zona)
        period = Period(args.desde, args.hasta, args.zona)
        history = read_history(args.ledger, args.difusor) if args.ledger else None
        comments = args.comentarios.read_text(encoding="utf-8") if args.comentarios else None
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        reason = f"no such time zone: {args.zona}" if isinstance(exc, KeyError) else exc
        print(f"error: {reason}", file=sys.stderr)
        return EXIT_USAGE
    request = MemoriaInput(
        difusor_id=args.difusor,
        election=history.election if history else None,
        election_day=args.jornada,
        sources=(args.logs,),
        generated_at=utc_now().astimezone(ZoneInfo(args.zona)).replace(tzinfo=None),
        comments=comments,
    )
    try:
        files, data = write_memoria(
            args.logs, period, request, history, args.out, not args.sin_pdf, args.database
        )
    except (LogSourceError, LedgerExportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PdfUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    key = data["key"]
    print(
        f"{files.html}: {key['hits']} solicitudes, {key['pages']} páginas, "
        f"{key['visits']} visitas, {key['unique_visitors']} visitantes únicos "
        f"({data['log_files']} archivos, {key['malformed_lines']} líneas mal formadas)"
    )
    for path in (files.pdf, files.json):
        if path is not None:
            print(path)
    return EXIT_OK


def _local_run(args: argparse.Namespace) -> int:
    from difusion.local.pipeline import PipelineOptions
    from difusion.local.session import embedded_pipeline, published_summary, run_package

    missing = [str(p) for p in args.packages if not p.is_file()]
    if missing:
        print(f"error: no such package: {', '.join(missing)}", file=sys.stderr)
        return EXIT_USAGE
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="difusion-local-"))
    options = PipelineOptions(election=args.election)
    with embedded_pipeline(work_dir, options=options) as pipeline:
        outcomes = []
        for package in args.packages:
            outcome = run_package(pipeline, package)
            outcomes.append(outcome)
            if not args.json:
                detail = f"{outcome.code}: {outcome.reason}" if outcome.code else ""
                print(f"{package.name}: {outcome.status} {detail}".rstrip(), flush=True)
        report: dict[str, Any] = {
            "packages": [o.to_json() for o in outcomes],
            "difusores": published_summary(pipeline),
            "logs": str(work_dir / "logs.jsonl"),
        }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for d in report["difusores"]:
            print(f"{d['difusor_id']}: publishes {d['snapshot_id']} (sequence {d['sequence']})")
    return EXIT_OK if all(o.status == "accepted" for o in outcomes) else EXIT_REJECTED


def _demo(args: argparse.Namespace) -> int:
    from difusion.generator import SeriesSpec
    from difusion.local.demo import run_demo

    spec = SeriesSpec()
    overrides = {k: v for k, v in (("casillas", args.casillas), ("cuts", args.cuts)) if v}
    if overrides:
        spec = SeriesSpec(**{**spec.__dict__, **overrides})
    report = run_demo(args.out, spec)
    return EXIT_OK if report["verified"] and not report["handler_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
