"""A `cpm train` process ends with its last event.

A real run (training/recipes/hand_long.toml, 1000 steps) wrote its final `error` event when its final metrics
found the validation images unreadable, and the process stayed alive afterwards: freeing the tf.data iterator
of the training batches waits in TensorFlow for the pipeline's autotuning thread, which misses its
cancellation and sleeps out its optimisation period (up to 60 s; up to 48 s measured after `done`).
The app and scripts wait for the process to end, so `cpm` now leaves right after the event
(training/cli.py `leave_process`).

Here a real `cpm train` subprocess on a copy of the tiny fixture trains until its input pipeline has produced
batches for a while (about 15 s, so the autotuning thread's period is seconds long), loses its validation
images, and is told to stop: the stop's final metrics re-read them and fail, which is the reported failure
without a test-only hook. The bound after the last event is 5 s: the fixed process exits within a tenth of a
second of writing it (nothing is left to do), so a slow or loaded machine meets it easily. The old lingering
lasted until the autotuning thread's next optimisation, which is a matter of chance: 7.8-11.2 s in 8 runs of
this scenario, 1.4 s and 10.2 s in two runs of this test on the old code (one failed); no bound catches it
every time, since the wait depends on where the thread is in its period.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from run_configs import TINY_COCO, write_tiny_config

from training.events import DoneEvent, ErrorEvent, StepEvent, parse_line

ROOT = Path(__file__).resolve().parents[1]
EXIT_BOUND_S = 5.0  # after the last event; see the module docstring
TRAIN_FOR_S = 14.0  # of training (step events' elapsed_s) before the run is made to fail


def _config(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny run on a private copy of the fixture (train and val), with upright crops so the end of the run
    scores the exported model on the validation images read again from disk (train.searched_metrics)."""
    data = tmp_path / "data"
    shutil.copytree(TINY_COCO.parent, data)
    cfg = write_tiny_config(tmp_path / "run.toml", 100000,
                            {"eval_every": 0, "checkpoint_every": 100000, "log_every": 1})
    text = cfg.read_text().replace(str(TINY_COCO), str(data / TINY_COCO.name))
    cfg.write_text(text.replace("margin = 1.5\n", 'margin = 1.5\norientation = "upright"\n'))
    return cfg, data / "images"


def _start(cfg: Path, stderr: io.TextIOBase) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-m", "training.cli", "train", str(cfg)], cwd=ROOT, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.PIPE)


def _follow(proc: subprocess.Popen, act, timeout: float = 300) -> tuple[list, float]:
    """Read events until stdout ends; `act(event)` is called on each. Returns the events and the time the
    last one was read."""
    events, last_at = [], time.monotonic()
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        ev = parse_line(line)
        assert ev is not None, f"non-protocol line on stdout: {line!r}"
        events.append(ev)
        last_at = time.monotonic()
        act(ev)
        assert time.monotonic() < deadline, "the run took too long"
    return events, last_at


def _exit_delay(proc: subprocess.Popen, last_at: float) -> float:
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the process was still running 120 s after its last event") from None
    return time.monotonic() - last_at


def _run(cfg: Path, tmp_path: Path, act) -> tuple[subprocess.Popen, list, float, str]:
    """Start `cpm train`, call `act(proc, event)` on each event, wait for the exit: the process, its events, the
    seconds from its last event to its exit, and the tail of its stderr."""
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        proc = _start(cfg, stderr)
        events, last_at = _follow(proc, lambda ev: act(proc, ev))
        delay = _exit_delay(proc, last_at)
    return proc, events, delay, stderr_path.read_text()[-3000:]


def test_process_exits_right_after_its_error_event(tmp_path):
    cfg, images = _config(tmp_path)
    fired = []

    def act(proc, ev) -> None:
        if isinstance(ev, StepEvent) and not fired and ev.elapsed_s >= TRAIN_FOR_S:
            shutil.rmtree(images)  # the validation images become unreadable, as in the reported run
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            fired.append(ev.step)

    proc, events, delay, tail = _run(cfg, tmp_path, act)
    assert fired, f"the run ended before it was made to fail: {events[-1:]}\n{tail}"
    assert sum(isinstance(e, StepEvent) for e in events) >= 5  # the input pipeline was producing batches
    last = events[-1]
    assert isinstance(last, ErrorEvent), f"last event {last}\n{tail}"
    assert "no subjects" in last.message
    assert proc.returncode == 1, tail
    assert delay < EXIT_BOUND_S, f"the process exited {delay:.1f} s after its error event"


def test_process_exits_right_after_done_on_sigterm(tmp_path):
    """The stop path (SIGTERM: checkpoint, evaluation, export, `done`) leaves as promptly."""
    cfg, _ = _config(tmp_path)
    sent = []

    def act(proc, ev) -> None:
        if isinstance(ev, StepEvent) and not sent and ev.step >= 5:
            proc.send_signal(signal.SIGTERM)
            sent.append(ev.step)

    proc, events, delay, tail = _run(cfg, tmp_path, act)
    last = events[-1]
    assert isinstance(last, DoneEvent) and last.stopped and last.reason == "SIGTERM", f"{last}\n{tail}"
    assert proc.returncode == 0, tail
    assert delay < EXIT_BOUND_S, f"the process exited {delay:.1f} s after its done event"


def test_in_process_main_returns_instead_of_leaving(tmp_path, capsys):
    """main([...]) called in-process (as tests do) must never end the caller's process: it returns the code."""
    from training.cli import main

    assert main(["train", str(tmp_path / "no_such.toml")]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert isinstance(parse_line(out[-1]), ErrorEvent)


def test_leave_after_last_event_calls_leave_with_the_protocol_exit_code():
    from training.events import EventWriter, StartEvent
    from training.train import LeaveAfterLastEvent

    calls: list[int] = []
    stream = io.StringIO()
    writer = LeaveAfterLastEvent(EventWriter(stream), calls.append)
    writer.write(StartEvent(kind="train"))
    assert calls == []
    writer.write(DoneEvent(step=3))
    writer.write(ErrorEvent(message="ValueError: x"))
    assert calls == [0, 1]
    assert [type(parse_line(line)) for line in stream.getvalue().splitlines()] == [StartEvent, DoneEvent, ErrorEvent]
    quiet = LeaveAfterLastEvent(EventWriter(io.StringIO()), None)  # main() called in-process: never leaves
    quiet.write(ErrorEvent(message="ValueError: x"))
