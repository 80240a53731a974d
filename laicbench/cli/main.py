"""The ``laicbench`` command: the parser of every subcommand and the dispatch to their modules
(``run``: run, status, list; ``tune``; ``data``: features, cache, validate; ``bench``;
``report``)."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from rich.console import Console

from laicbench import __version__
from laicbench.api import registry
from laicbench.api.errors import UserError
from laicbench.cli import bench as cli_bench
from laicbench.cli import data as cli_data
from laicbench.cli import report as cli_report
from laicbench.cli import run as cli_run
from laicbench.cli import tune as cli_tune
from laicbench.cli.options import Parser, data_options, plugin_options, selection_options

EXIT_USAGE = 2


def _subcommand_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The (sub)parser of the command `args` names: ``run``, ``bench methods``, ..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _subcommand_parser(chosen, args)
    return parser


def _unrecognized(parser: argparse.ArgumentParser, args, unknown: list[str]) -> UserError:
    """One-line error for `unknown` arguments, suggesting only options of the command given."""
    command = _subcommand_parser(parser, args)
    # compared without the dashes, which every option shares and which would make all look close
    options = {s.lstrip("-"): s for a in command._actions for s in a.option_strings}
    for arg in unknown:
        if not arg.startswith("-"):
            continue
        close = difflib.get_close_matches(arg.split("=")[0].lstrip("-"), options, n=3, cutoff=0.6)
        if close:
            names = " or ".join(repr(options[c]) for c in close)
            return UserError(
                f"unrecognized option {arg} (did you mean {names}?) (see '{command.prog} --help')"
            )
    return UserError(f"unrecognized arguments: {' '.join(unknown)} (see '{command.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``laicbench`` command."""
    plugins, data, selection = plugin_options(), data_options(), selection_options()
    parser = Parser(
        prog="laicbench",
        description="Benchmark harness for language-assisted image clustering.",
    )
    parser.add_argument("--version", action="version", version=f"laicbench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    cli_run.add_commands(sub, plugins, data, selection)
    cli_tune.add_commands(sub, plugins, data, selection)
    cli_data.add_commands(sub, plugins, data)
    cli_bench.add_commands(sub)
    cli_report.add_commands(sub, plugins, data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``laicbench`` console script; returns the exit status."""
    # piped output (logs, CI) gets room for whole tables instead of rich's 80-column fallback
    # ($COLUMNS, when set, is honoured by rich either way)
    out = Console() if sys.stdout.isatty() or "COLUMNS" in os.environ else Console(width=200)
    err = Console(stderr=True)
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
            argv = ["run", *argv]  # `laicbench [run options]` is `laicbench run [run options]`
        parser = build_parser()
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            raise _unrecognized(parser, args, unknown)
        for folder in getattr(args, "include_path", []):
            registry.load_plugin_folder(folder)
        if args.command in ("run", "status", "list"):
            return cli_run.dispatch(args, out, err)
        if args.command == "tune":
            return cli_tune.dispatch(args, out, err)
        if args.command == "bench":
            return cli_bench.dispatch(args, out)
        if args.command in ("report", "rescore"):
            return cli_report.dispatch(args, out)
        return cli_data.dispatch(args, out, err)
    except UserError as exc:
        print(f"laicbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
