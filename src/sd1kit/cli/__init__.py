"""The `sd1kit` command line: a thin shell over the library. Errors are one line on stderr, never a traceback.

One module per command group; each has `add_parser(subparsers)`, which registers its command(s) with
`set_defaults(func=...)`. Every command's parser parses intermixed: positionals may stand after options
(common.IntermixedParser).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from sd1kit.cli import batch, dev, generate, get, info, inspect, lora, merge, models, prompt, qr, serve, upscale
from sd1kit.cli.common import IntermixedParser, _error, add_subcommands
from sd1kit.cli.dev import DEMO_PROMPTS
from sd1kit.errors import Sd1kitError, os_error

__all__ = ["DEMO_PROMPTS", "build_parser", "main"]

# in the order `sd1kit --help` lists them: inspect and convert, prompt, generate, info, upscale, lora, merge, models,
# get and install, qr, serve, batch, demo and dev
COMMANDS = (inspect, prompt, generate, info, upscale, lora, merge, models, get, qr, serve, batch, dev)


def build_parser() -> argparse.ArgumentParser:
    parser = IntermixedParser(prog="sd1kit", description="Stable Diffusion 1 anime checkpoints, safely.")
    sub = add_subcommands(parser, dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Sd1kitError as e:
        _error(e)
        return 2
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # a full disk, a read-only folder, a file that vanished: said in the user's words
        _error(os_error(e))
        return 2
    except Exception as e:  # noqa: BLE001 - the CLI promises one line, not a traceback
        if os.environ.get("SD1KIT_DEBUG"):
            traceback.print_exc()
        print(f"sd1kit: internal error: {e.__class__.__name__}: {e} (set SD1KIT_DEBUG=1 for details)",
              file=sys.stderr)
        return 3
