"""What the command modules share: the parser class, error output, and argument readers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sd1kit.errors import Sd1kitError


class IntermixedParser(argparse.ArgumentParser):
    """A parser whose positionals may stand after its options: `sd1kit qr URL --model M "a castle"`.

    Plain argparse matches consecutive positionals in one chunk (there: URL and the optional prompt, before --model),
    so a positional after the options is left over as an unrecognized argument. parse_known_intermixed_args parses
    the options first and the positionals from what is left, but refuses a parser with subparsers: such a parser
    (the top one, `lora`, `models`, `dev`) parses as usual and hands the rest to its subcommand's parser, which is of
    this class too (add_subcommands) and parses intermixed.
    """

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._subparsers is not None or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls parse_known_args itself (CPython 3.11, 3.12)
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def add_subcommands(parser: argparse.ArgumentParser, **kwargs) -> argparse._SubParsersAction:
    """parser.add_subparsers, its commands' parsers parsing intermixed."""
    return parser.add_subparsers(parser_class=IntermixedParser, **kwargs)


def _error(e: Sd1kitError) -> None:
    print(f"sd1kit: {e}", file=sys.stderr)


def _read_text_arg(text: str | None, file: str | None, what: str) -> str | None:
    if file is None:
        return text
    try:
        return Path(file).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise Sd1kitError(file, f"{what} file is not valid UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise Sd1kitError(file, f"cannot read {what} file ({e.strerror})") from None
