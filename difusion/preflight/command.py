"""``difusion preflight``: the command line's part. Light to import: ``cli`` registers the
subcommand with :func:`add_preflight_parser` whatever command runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from difusion.adapters.sessions import new_session

DESCRIPTION = """\
Read-only checks of a real deployment, for drills and election night.

Institute mode (credentials in the institute's account):
  difusion preflight --outputs institute-outputs.json [--difusor ID] [--difusor-report R ...]
Difusor mode (read-only credentials in the difusor's account):
  difusion preflight --difusor-outputs difusor-outputs.json --institute-account ACCOUNT
                     [--election E]
  difusion preflight --difusor-outputs difusor-outputs.json --outputs institute-outputs.json

Exit codes: 0 every check ✓; 1 some check ✗; 2 usage (a missing or unusable file).
"""


def add_preflight_parser(commands: Any) -> None:
    """Register ``preflight`` on the CLI's subcommands."""
    parser = commands.add_parser(
        "preflight",
        help="check a real deployment, read-only, before drills and election night",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--outputs",
        type=Path,
        help="the institute stack's `cdk deploy --outputs-file` (institute mode; in difusor "
        "mode, where the institute's role ARNs come from)",
    )
    parser.add_argument("--difusor", metavar="ID", help="institute mode: only this difusor")
    parser.add_argument(
        "--difusor-report",
        type=Path,
        action="append",
        default=[],
        metavar="REPORT",
        help="institute mode: a difusor's `preflight --difusor-outputs … --json` report, "
        "for its delivery role's trust (repeatable)",
    )
    parser.add_argument(
        "--difusor-outputs",
        type=Path,
        help="a difusor stack's `cdk deploy --outputs-file` (difusor mode)",
    )
    parser.add_argument("--institute-account", help="difusor mode: the institute's account id")
    parser.add_argument(
        "--election", help="difusor mode: the election id (default: the outputs' ElectionId)"
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(run=run)


def default_session() -> Any:
    """The standard AWS configuration (profile, region, credentials, AWS_ENDPOINT_URL)."""

    return new_session()


def run(args: argparse.Namespace) -> int:
    from difusion.preflight.outputs import OutputsError
    from difusion.preflight.report import EXIT_USAGE, exit_code, print_table, to_json

    try:
        if args.difusor_outputs:
            title, results = _difusor_mode(args)
        elif args.outputs:
            title, results = _institute_mode(args)
        else:
            raise OutputsError(
                "pass --outputs institute-outputs.json (institute mode) or "
                "--difusor-outputs difusor-outputs.json (difusor mode)"
            )
    except OutputsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(to_json(results))
    else:
        print_table(results, title)
    return exit_code(results)


def _institute_mode(args: argparse.Namespace) -> tuple[str, list[Any]]:
    from difusion.preflight.collect import institute_preflight
    from difusion.preflight.outputs import InstituteOutputs, OutputsError
    from difusion.preflight.report import load_report

    if args.institute_account or args.election:
        raise OutputsError("--institute-account and --election are for difusor mode")
    outputs = InstituteOutputs.from_file(args.outputs)
    reports = {str(path): load_report(path) for path in args.difusor_report}
    results = institute_preflight(
        outputs, default_session(), difusor_id=args.difusor, reports=reports
    )
    return f"preflight: institute account {outputs.account}", results


def _difusor_mode(args: argparse.Namespace) -> tuple[str, list[Any]]:
    from difusion.preflight.collect import difusor_preflight
    from difusion.preflight.outputs import DifusorOutputs, InstituteRoles, OutputsError

    if args.difusor or args.difusor_report:
        raise OutputsError("--difusor and --difusor-report are for institute mode")
    outputs = DifusorOutputs.from_file(args.difusor_outputs)
    election = args.election or outputs.election_id
    if args.election and outputs.election_id and args.election != outputs.election_id:
        raise OutputsError(
            f"--election {args.election}, but {args.difusor_outputs} was deployed for "
            f"{outputs.election_id}"
        )
    if args.outputs:
        roles = InstituteRoles.from_file(args.outputs)
    elif args.institute_account:
        if not election:
            raise OutputsError(f"{args.difusor_outputs} has no ElectionId output: pass --election")
        roles = InstituteRoles.named(args.institute_account, election)
    else:
        raise OutputsError(
            "difusor mode needs the institute's account (--institute-account ACCOUNT) "
            "or its outputs (--outputs institute-outputs.json)"
        )
    results = difusor_preflight(outputs, roles, default_session())
    return f"preflight: difusor {outputs.difusor_id}, account {outputs.account_id}", results
