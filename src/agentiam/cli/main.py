"""The ``agentiam`` entry point: ``agentiam <noun> <verb>`` on argparse.

Each noun is a module ``agentiam.cli.<module>`` with ``register(subparsers)``, which
adds its parser and sets ``func`` on each verb.  ``func(args)`` prints its result
with ``agentiam.cli.output.emit(result, output=args.output)`` and returns the exit
code.  Exit codes: 0 success, 1 failure, 2 usage error.

Every parser accepts only full option names, and a usage error is reported by the
parser of the deepest command given, so ``agentiam user add --bad`` prints the
usage of ``agentiam user add``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

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


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that accepts only full option names.

    ``add_subparsers`` creates parsers of the class of its parent, so every noun and
    verb parser below a ``CommandParser`` is one too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


class MisplacedOutputAction(argparse.Action):
    """Reject ``--output`` between a noun and its verb with a usage error.

    A noun's parser receives the flag only before the verb, because the verb's
    parser takes every argument after the verb.
    """

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        value = values if values in ("text", "json") else "json"
        noun = parser.prog.removeprefix("agentiam ")
        parser.error(
            f"--output goes before the noun or after the verb, as in "
            f"'agentiam --output {value} {noun} <verb>' or "
            f"'agentiam {noun} <verb> --output {value}'"
        )


def build_parser(
    nouns: Sequence[tuple[str, str]] = NOUN_MODULES,
) -> argparse.ArgumentParser:
    """Build the parser with every noun module of ``nouns`` that is installed."""
    parser = CommandParser(
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

    for noun_parser in _parsers_with_verbs(parser):
        # SUPPRESS, so that the trap sets no value over one given before the noun.
        noun_parser.add_argument(
            "--output",
            nargs="?",
            action=MisplacedOutputAction,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    return parser


def _subparsers_action(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _parsers_with_verbs(
    parser: argparse.ArgumentParser,
) -> Iterator[argparse.ArgumentParser]:
    """Yield every parser below ``parser`` that has verbs of its own."""
    action = _subparsers_action(parser)
    if action is None:
        return
    for child in dict.fromkeys(action.choices.values()):
        if _subparsers_action(child) is not None:
            yield child
        yield from _parsers_with_verbs(child)


def _selected_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """Return the parser of the deepest noun or verb that ``args`` selected."""
    while (action := _subparsers_action(parser)) is not None:
        child = action.choices.get(getattr(args, action.dest, None) or "")
        if child is None:
            break
        parser = child
    return parser


def main(
    argv: Sequence[str] | None = None,
    nouns: Sequence[tuple[str, str]] = NOUN_MODULES,
) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser(nouns)
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            _selected_parser(parser, args).error(
                f"unrecognized arguments: {' '.join(unknown)}"
            )
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
    except Exception as exc:
        message = database_error_message(exc)
        if message is None:
            raise
        output.error(message)
        return EXIT_FAILURE


def database_error_message(exc: BaseException) -> str | None:
    """Return one line for an error the database driver raised, else ``None``.

    A database that cannot be opened or reached, or a schema that does not
    exist, is a problem of the command's settings, not a bug, so it gets one
    error line instead of a traceback.
    """
    try:
        from sqlalchemy.exc import DBAPIError
    except ImportError:  # the CLI without the server's dependencies
        return None
    if not isinstance(exc, DBAPIError):
        return None
    detail = str(exc.orig).strip().splitlines()
    return f"database error: {detail[0] if detail else type(exc.orig).__name__}"


if __name__ == "__main__":
    sys.exit(main())
