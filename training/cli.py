"""The `cpm` command: one entry point, subcommands registered by the modules that implement them.

Each module exposes `register(subparsers)`, which adds its subcommands with `func=handler(args) -> int`.
Handlers import TensorFlow lazily. TensorFlow's C++ start-up lines (CUDA probing, oneDNN notices, TFLite's
XNNPACK notice) are kept off stderr unless `--verbose` (anywhere on the line) or CPM_VERBOSE=1 asks for them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

# Modules that add subcommands; a module that is not importable (optional part missing) is skipped.
COMMAND_MODULES = [
    "cpm_core.infer",
    "cpm_core.suggest",
    "cpm_core.weights.commands",
    "cpm_core.dataset.commands",
    "training.train",
    "training.distill",
    "training.export",
    "training.evaluate",
    "training.quantise",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cpm", description="Convolutional Pose Machines: inference, weights, "
                                     "datasets, training.")
    parser.add_argument(VERBOSE_FLAG, action="store_true", help="show TensorFlow's start-up and log lines (also "
                        "CPM_VERBOSE=1); accepted after the subcommand too")
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


VERBOSE_FLAG = "--verbose"

# What TensorFlow, absl, the CUDA probe and TFLite print from C++ straight to file descriptor 2 while TensorFlow
# starts: absl's pre-init banner, INFO/WARNING lines (oneDNN and CPU-feature notices, "Could not find cuda
# drivers"), the CUDA probe's expected ERROR lines on a machine without a GPU ("failed call to cuInit"), and the
# XNNPACK notice. Anything else printed meanwhile (a real error) is passed on.
_NATIVE_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \S+\s+\d+ \S+:\d+\] .*"
    r"|E\d{4} \S+\s+\d+ \S*cud\S*:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    r"|INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."
)


def verbose_requested(argv: list[str]) -> bool:
    """`--verbose` anywhere before a `--`, or CPM_VERBOSE (or the older CPM_TF_VERBOSE) set to anything but 0:
    decided before TensorFlow is imported, since its start-up lines are printed during the import."""
    words = argv[:argv.index("--")] if "--" in argv else argv
    env = (os.environ.get("CPM_VERBOSE") or os.environ.get("CPM_TF_VERBOSE") or "").strip()
    return VERBOSE_FLAG in words or env not in ("", "0")


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Point file descriptor 2 (where C++ libraries write) at a temporary file for the block, then pass on what
    is not known start-up noise (`_NATIVE_NOISE`); if the block raises, everything is passed on."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").splitlines()
            kept = lines if failed else [line for line in lines if not _NATIVE_NOISE.fullmatch(line.strip())]
            if any(line.strip() for line in kept):
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def _spend_tflite_notice() -> None:
    """TFLite prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." from C++ the first time a process
    makes an interpreter, once. Making one here, the way cpm_core does (the bundled palm detector, a few
    milliseconds), spends that line while stderr is filtered; a missing model file only means no notice to spend."""
    from cpm_core.detection.palm import default_palm_model
    from cpm_core.detection.ssd import load_interpreter

    path = default_palm_model()
    if path.is_file():
        load_interpreter(path, threads=1)


def quiet_native_start(verbose: bool = False) -> None:
    """Start TensorFlow (import, device discovery, TFLite's first interpreter) with its C++ start-up chatter
    filtered out, and keep TensorFlow's and absl's Python loggers to errors; with `verbose` nothing is hidden.
    The CLI and the app call this first, before anything imports TensorFlow. Real errors are still shown."""
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO/WARNING lines; errors still shown
    if "tensorflow" in sys.modules:
        return
    with native_stderr_filtered():
        import tensorflow as tf

        tf.config.list_physical_devices()
        _spend_tflite_notice()
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)  # its INFO/WARNING lines when a model is first converted


def leave_process(code: int) -> NoReturn:
    """End the `cpm` process now with exit status `code`: stdout and stderr are flushed, then `os._exit`, so
    nothing of the interpreter's teardown (object destructors, native threads, atexit) runs any more.

    Why: a `cpm train` process that had written its last event (`done`, or `error` from the final metrics)
    did not end; the app and scripts wait for the process to end. Its main thread was in TensorFlow's
    `RootDataset::Iterator::~Iterator`, freeing the training batches' iterator as `run_loop` returned (or as
    the `error` handler dropped the traceback that held it): that destructor cancels the tf.data autotuning
    thread (`Model::OptimizeLoop`) and joins it, but the thread's wake-up is lost (TensorFlow's cancellation
    callback notifies it before `IsCancelled()` is true), so it sleeps until its next optimisation; the period
    doubles up to 60 s during a run. Measured: up to 48 s after `done` (hand_long.toml, 20 steps), 8-11 s on the
    tiny fixture; gdb: main thread in ~Iterator joining the thread in `Model::OptimizeLoop`, both asleep; no
    Python thread left but the daemon stdin watcher.
    Freeing the iterator earlier only moves that wait (it blocks whichever thread frees it), and turning the
    autotuning off would retune every run's input pipeline; a process whose last event is out has nothing left
    worth a teardown (its files are closed: checkpoints, metrics.csv and the model are written before the
    event), so it leaves at once.

    Only the `cpm` process itself does this: `main()` hands it to the protocol commands (`args.leave`) when
    it reads `sys.argv` (the console script, `python -m training.cli`); `main([...])` called in-process (tests)
    returns as any function does."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said on it
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """The `cpm` command. With `argv` None it is the process's entry point (the console script, `python -m
    training.cli`): it reads `sys.argv`, and `cpm train`/`cpm distill` end the process with `leave_process`
    as soon as their last event is written. With `argv` given (a caller in the same process) it only returns."""
    process = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = verbose_requested(argv)
    if verbose:  # accepted anywhere, so no subcommand has to declare it
        cut = argv.index("--") if "--" in argv else len(argv)
        argv = [a for a in argv[:cut] if a != VERBOSE_FLAG] + argv[cut:]
    quiet_native_start(verbose)  # before the subcommand modules, some of which import TensorFlow
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.leave = leave_process if process else None  # read by the protocol commands' event writers
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
