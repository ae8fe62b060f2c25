"""The `cpm` command: one entry point, subcommands registered by the modules that implement them.

Each module exposes `register(subparsers)`, which adds its subcommands with `func=handler(args) -> int`.
Handlers import TensorFlow lazily, so `cpm --help` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile

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


def quiet_tensorflow_start() -> None:
    """Import TensorFlow and initialise its devices with the C++ start-up chatter (CUDA probing, oneDNN and
    CPU-feature notices) kept off the terminal; it is shown only if the start fails. Python-level warnings
    and errors later on are untouched."""
    if "tensorflow" in sys.modules or os.environ.get("CPM_TF_VERBOSE"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv: list[str] | None = None) -> int:
    quiet_tensorflow_start()  # before the subcommand modules, some of which import TensorFlow
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
