"""The ``agentiam`` entry point: ``agentiam <noun> <verb>`` on argparse.

Each noun is a module ``agentiam.cli.<module>`` with ``register(subparsers)``, which
adds its parser and sets ``func`` on each verb.  ``func(args)`` prints its result
with ``agentiam.cli.output.emit(result, output=args.output)`` and returns the exit
code.  Exit codes: 0 success, 1 failure, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from agentiam.cli import output
from agentiam.errors import AgentIAMError

#: Nouns in the order ``--help`` lists them, with the module that registers each.
NOUN_MODULES: tuple[tuple[str, str], ...] = (
    ("serve", "serve"),
    ("key", "key"),
    ("user", "user"),
    ("agent-class", "agent_class"),
    ("join-token", "join_token"),
    ("client", "client"),
    ("approval", "approval"),
    ("task", "task"),
    ("grant", "grant"),
    ("agent", "agent"),
    ("session", "session"),
    ("audit", "audit"),
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def build_parser(
    nouns: Sequence[tuple[str, str]] = NOUN_MODULES,
) -> argparse.ArgumentParser:
    """Build the parser with every noun module of ``nouns`` that is installed."""
    parser = argparse.ArgumentParser(
        prog="agentiam", description="Identity and access management for AI agents."
    )
    parser.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="result format on stdout (default: text)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log debug diagnostics to stderr"
    )
    subparsers = parser.add_subparsers(dest="noun", metavar="<noun>", required=True)

    for noun, module_name in nouns:
        name = f"agentiam.cli.{module_name}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            # NOTE: a noun whose module is not written yet is left out of the CLI;
            # an import error inside an existing module still propagates.
            if exc.name != name:
                raise
            continue
        register = getattr(module, "register", None)
        if register is None:
            raise AttributeError(
                f"CLI module {name} for noun {noun!r} has no register(subparsers)"
            )
        register(subparsers)
    return parser


def main(
    argv: Sequence[str] | None = None,
    nouns: Sequence[tuple[str, str]] = NOUN_MODULES,
) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser(nouns)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE

    if args.noun != "serve":
        level = logging.DEBUG if args.verbose else logging.WARNING
        logging.basicConfig(
            level=level, stream=sys.stderr, format="%(levelname)s %(message)s"
        )

    func = getattr(args, "func", None)
    if func is None:
        parser.parse_args([args.noun, "--help"])
        return EXIT_USAGE

    try:
        return int(func(args) or EXIT_OK)
    except AgentIAMError as exc:
        output.error(str(exc))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        output.error("interrupted")
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
