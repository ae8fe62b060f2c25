"""The `cpm` command: one entry point, subcommands registered by the modules that implement them.

Each module exposes `register(subparsers)`, which adds its subcommands with `func=handler(args) -> int`.
Handlers import TensorFlow lazily, so `cpm --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that add subcommands; a module that is not importable (optional part missing) is skipped.
COMMAND_MODULES = [
    "cpm_core.infer",
    "cpm_core.weights.commands",
    "cpm_core.dataset.commands",
    "training.train",
    "training.distill",
    "training.export",
    "training.evaluate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpm", description="Convolutional Pose Machines: inference, weights, "
                                     "datasets, training.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
