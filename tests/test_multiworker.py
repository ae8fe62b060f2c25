"""`train.strategy = "multiworker"` with two real `cpm train` processes (issue #22, item 15).

Two workers on 127.0.0.1 ports, each told its place by TF_CONFIG (as on two hosts; here they also share the
output folder, as hosts sharing a file system would), train the tiny fixture model with TensorFlow's
MultiWorkerMirroredStrategy. Every wait has a timeout, so a hang fails the test instead of blocking it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from run_configs import write_tiny_config

from training.events import parse_line

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start(cfg: Path, ports: list[int], extra: list[str], outputs: list[Path] | None = None) -> list[subprocess.Popen]:
    procs = []
    for i in range(len(ports)):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2",
               "CUDA_VISIBLE_DEVICES": ""}
        args = [sys.executable, "-m", "training.cli", "train", str(cfg), *extra]
        if outputs:
            args += ["--output", str(outputs[i])]
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL))
    return procs


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, list[dict], str]]:
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a worker hung") from None
        events = [parse_line(line) for line in out.splitlines()]
        assert all(events), f"non-protocol line on stdout: {out[:500]}"
        results.append((p.returncode, events, err))
    return results


def _config(tmp_path: Path, steps: int) -> Path:
    # Augmentation off: the same crops every step, so "the loss falls" is about training, not about which random
    # rotation the last steps drew (with it on, the loss after 12 steps was above the first steps' in one CI run).
    still = {"rotation": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "brightness": 0.0, "contrast": 0.0,
             "saturation": 0.0, "low_res": 0.0, "noise": 0.0}
    # A constant rate: a cosine schedule over 12 steps decays before the tiny net has learnt much, and an early
    # Adam spike (seen in about one run in four: 232, 221, 234, ... 234) could leave the last losses above the
    # first ones. With a constant rate the last two logged losses ended 7-31 below the first two in four runs.
    return write_tiny_config(tmp_path / "run.toml", steps,
                             {"strategy": "multiworker", "checkpoint_every": 6, "eval_every": 0, "log_every": 2,
                              "lr": 0.003, "schedule": "constant"}, augment=still)


def test_two_workers_train_resume_and_only_the_chief_writes(tmp_path):
    cfg = _config(tmp_path, 12)
    out = tmp_path / "out"
    results = _finish(_start(cfg, _ports(2), []))
    for code, events, err in results:
        assert code == 0, err[-2000:]
        assert events[0]["event"] == "start" and events[0]["workers"] == 2 and events[0]["replicas"] == 2
        assert events[-1]["event"] == "done" and events[-1]["step"] == 12
    (_, chief, _), (_, other, _) = results
    assert chief[0]["chief"] is True and other[0]["chief"] is False and other[0]["worker"] == 1
    # One model trained in step: the same (all-reduced) loss on both workers, and it falls.
    losses = [[e["loss"] for e in ev if e["event"] == "step"] for _, ev, _ in results]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert np.mean(losses[0][-2:]) < np.mean(losses[0][:2])
    # The chief alone wrote: checkpoints, metrics, the model; the other worker reports no model and kept none.
    assert [e["path"] for e in chief if e["event"] == "checkpoint"] == [str(out / "checkpoints" / "ckpt-6"),
                                                                       str(out / "checkpoints" / "ckpt-12")]
    assert not [e for e in other if e["event"] == "checkpoint"]
    assert chief[-1]["model"] == str(out / "model") and other[-1]["model"] is None
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "metrics.csv", "model"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "checkpoint", "ckpt-12.data-00000-of-00001", "ckpt-12.index", "ckpt-6.data-00000-of-00001", "ckpt-6.index"]
    card = json.loads((out / "model" / "card.json").read_text())
    assert card["provenance"]["steps"] == 12

    # Resumed: both workers continue from the chief's checkpoint at step 12.
    results = _finish(_start(cfg, _ports(2), ["--resume", "--set", "train.steps=16"]))
    for code, events, err in results:
        assert code == 0, err[-2000:]
        assert events[0]["start_step"] == 12 and events[0]["resumed_from"].endswith("ckpt-12")
        assert [e["step"] for e in events if e["event"] == "step"] == [14, 16]
        assert events[-1]["event"] == "done" and events[-1]["step"] == 16
    card = json.loads((out / "model" / "card.json").read_text())
    assert card["provenance"]["steps"] == 16 and card["provenance"]["legs"] == 2


def test_workers_that_resume_from_different_steps_stop_with_an_error(tmp_path):
    """A worker that cannot see the chief's checkpoints (no shared folder) would start at step 0 and the two
    would wait on each other's collectives; both stop at once instead, saying why."""
    cfg = _config(tmp_path, 6)
    # The chief's folder has a checkpoint at step 6; the other worker's folder is empty.
    results = _finish(_start(cfg, _ports(2), []))
    assert all(code == 0 for code, _, _ in results), results[0][2][-2000:]
    results = _finish(_start(cfg, _ports(2), ["--resume", "--set", "train.steps=10"],
                             outputs=[tmp_path / "out", tmp_path / "elsewhere"]))
    for code, events, err in results:
        assert code == 1, err[-2000:]
        assert events[-1]["event"] == "error" and "resume from different steps" in events[-1]["message"]
        assert "Traceback" not in err


def test_killing_one_worker_stops_the_other_with_an_error_event(tmp_path):
    cfg = _config(tmp_path, 100000)
    procs = _start(cfg, _ports(2), [])
    chief, other = procs
    deadline = time.time() + TIMEOUT
    seen = []
    for line in chief.stdout:  # wait until the cluster trains
        ev = parse_line(line)
        seen.append(ev)
        if ev and ev["event"] == "step" and ev["step"] >= 4:
            break
        assert time.time() < deadline, "the workers never started training"
    other.kill()
    other.wait(timeout=30)
    try:
        rest, err = chief.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        chief.kill()
        raise AssertionError("the surviving worker hung after its peer was killed") from None
    events = [parse_line(line) for line in rest.splitlines()]
    assert chief.returncode == 1
    assert events[-1]["event"] == "error"
    message = events[-1]["message"]
    assert message.startswith("worker 0: the training cluster failed") and "--resume" in message
    assert "Traceback" not in err
