"""Killed training runs keep their history (issue #22, item 9).

Real `cpm train` processes on the tiny fixture run: one is SIGKILLed between checkpoints and resumed, and the
tests check what a user finds afterwards: metrics.csv with its header and every logged row (and
`training.learning_curve` reading it), no `ckpt-*_temp` leftovers, `--resume` past a truncated newest checkpoint
to the previous intact one (naming the one it skipped and why), and a card whose wall time is the sum of the
legs that made the model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from run_configs import write_tiny_config

from training.events import parse_line
from training.learning_curve import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def _cpm(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-m", "training.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE)


def _events(proc: subprocess.Popen, until=None, timeout: float = 240) -> list[dict]:
    out = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        ev = parse_line(line)
        assert ev is not None, f"non-protocol line on stdout: {line!r}"
        out.append(ev)
        if until and until(ev):
            break
        assert time.time() < deadline, "training took too long"
    return out


def _run(args: list[str]) -> tuple[int, list[dict], str]:
    proc = _cpm(args)
    events = _events(proc)
    proc.wait(timeout=120)
    return proc.returncode, events, proc.stderr.read()


def _config(tmp_path: Path, steps: int) -> Path:
    # eval_every = 0: before the fix, rows reached the file only when an evaluation flushed it.
    return write_tiny_config(tmp_path / "run.toml", steps, {"eval_every": 0, "checkpoint_every": 10, "log_every": 2})


def _kill_after(cfg: Path, step: int) -> list[dict]:
    """Start a long run and SIGKILL it once it reported `step` (after its checkpoint at step 10)."""
    proc = _cpm(["train", str(cfg), "--set", "train.steps=100000"])
    events = _events(proc, until=lambda e: e["event"] == "step" and e["step"] >= step)
    proc.kill()
    proc.wait(timeout=30)
    assert any(e["event"] == "checkpoint" and e["step"] == 10 for e in events)
    return events


def _checkpoint_value(prefix: Path, name: str) -> float:
    reader = tf.train.load_checkpoint(str(prefix))
    return float(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


def test_killed_run_keeps_metrics_and_resumed_card_sums_the_legs(tmp_path):
    cfg = _config(tmp_path, 20)
    out = tmp_path / "out"
    first = _kill_after(cfg, 14)
    logged = [e["step"] for e in first if e["event"] == "step"]
    # Every row logged before the kill is on disk, under its header (before: an empty file, as nothing had
    # been flushed, and after a resume appended to it, learning_curve failed with KeyError: 'step').
    text = (out / "metrics.csv").read_text()
    assert text.startswith("step,loss,lr,images_per_s,val_pck,val_epe\n")
    assert [int(line.split(",")[0]) for line in text.splitlines()[1:]] == logged

    code, events, stderr = _run(["train", str(cfg), "--resume"])
    assert code == 0, stderr
    assert events[0]["start_step"] == 10 and events[-1]["event"] == "done" and events[-1]["step"] == 20
    loss, _ = read_metrics(out)
    # The rows after the checkpoint (12, 14) were trained again; each step appears once, with the resumed value.
    assert [s for s, _ in loss] == list(range(2, 21, 2))
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,") and [ln.split(",")[0] for ln in lines[1:]].count("12") == 1

    # The card counts both legs: the first leg's time up to its checkpoint (saved in ckpt-10) plus this leg.
    card = json.loads((out / "model" / "card.json").read_text())
    first_leg = _checkpoint_value(out / "checkpoints" / "ckpt-10", "wall_time_s")
    assert first_leg > 0
    assert card["provenance"]["legs"] == 2
    assert card["provenance"]["wall_time_s"] == pytest.approx(first_leg + events[-1]["leg_wall_time_s"], abs=0.06)
    assert events[-1]["wall_time_s"] == pytest.approx(card["provenance"]["wall_time_s"], abs=0.06)


def test_headerless_and_torn_metrics_files_still_read(tmp_path):
    """A metrics.csv as old runs left it after a kill and a resume: no header, a torn last line."""
    (tmp_path / "metrics.csv").write_text("2,5.0,0.001,10.0,,\n4,4.0,0.001,10.0,,\n4,,,,0.5000,3.0\n6,3.")
    loss, pck = read_metrics(tmp_path)
    assert loss == [(2, 5.0), (4, 4.0)] and pck == [(4, 0.5)]


def test_resume_removes_unfinished_saves_and_skips_a_truncated_checkpoint(tmp_path):
    cfg = _config(tmp_path, 20)
    ckpts = tmp_path / "out" / "checkpoints"
    code, events, stderr = _run(["train", str(cfg)])
    assert code == 0, stderr
    assert {p.name for p in ckpts.glob("*.index")} == {"ckpt-10.index", "ckpt-20.index"}
    # What a save killed midway leaves: TensorFlow's shard folder, never merged into ckpt-30.*.
    temp = ckpts / "ckpt-30_temp"
    temp.mkdir()
    (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 4096)
    # The newest checkpoint cut short (a full disk, an interrupted copy).
    data = ckpts / "ckpt-20.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])

    code, events, stderr = _run(["train", str(cfg), "--resume", "--set", "train.steps=24"])
    assert code == 0, stderr
    start = events[0]
    assert start["removed_temp"] == ["ckpt-30_temp"] and not temp.exists()
    assert start["start_step"] == 10 and start["resumed_from"].endswith("ckpt-10")
    [skipped] = start["skipped_checkpoints"]
    assert skipped["path"].endswith("ckpt-20") and skipped["reason"]
    assert "ckpt-20" in stderr and "Traceback" not in stderr
    assert events[-1]["event"] == "done" and events[-1]["step"] == 24
    # The broken checkpoint is kept aside, not deleted, and the index no longer names it.
    assert (ckpts / "broken" / "ckpt-20.index").exists()
    assert tf.train.get_checkpoint_state(str(ckpts)).model_checkpoint_path.endswith("ckpt-24")

    code, events, stderr = _run(["train", str(cfg), "--resume", "--set", "train.steps=26"])
    assert code == 0, stderr
    assert events[0]["resumed_from"].endswith("ckpt-24") and events[0]["skipped_checkpoints"] == []


def test_resume_with_no_intact_checkpoint_is_one_clear_error(tmp_path):
    cfg = _config(tmp_path, 10)
    ckpts = tmp_path / "out" / "checkpoints"
    code, _, stderr = _run(["train", str(cfg)])
    assert code == 0, stderr
    (ckpts / "ckpt-10.index").write_bytes(b"")
    code, events, stderr = _run(["train", str(cfg), "--resume"])
    assert code == 1
    assert events[-1]["event"] == "error" and "ckpt-10" in events[-1]["message"]
    assert "no intact checkpoint" in events[-1]["message"] and "Traceback" not in stderr


# ------------------------------------------------------------------------------------------- weights (item 11)

def _tiny_model_folder(folder: Path, stages: int = 3) -> Path:
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.spec import ModelSpec
    from cpm_core.weights import save_model

    spec = ModelSpec("tiny", 64, stages, 21, 4, "hand", width=0.125)
    return save_model(build_cpm(spec), ModelCard.for_spec(spec), folder)


def _edit_card(folder: Path, **spec_changes) -> None:
    card = json.loads((folder / "card.json").read_text())
    card["spec"].update(spec_changes)
    (folder / "card.json").write_text(json.dumps(card))


def _stage1_only_pkl(path: Path) -> Path:
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for name, shape in (("conv5_3_CPM", (3, 3, 4, 8)), ("conv6_1_CPM", (1, 1, 8, 8)), ("conv6_2_CPM", (1, 1, 8, 22))):
        arrays[name] = rng.normal(size=shape).astype(np.float32)
        arrays[name + "_b"] = np.zeros(shape[-1], np.float32)
    path.write_bytes(pickle.dumps(arrays, protocol=2))
    return path


def test_weights_edge_cases_are_one_clear_weights_error(tmp_path):
    from cpm_core.weights import WeightsError, load_model

    pkl = _stage1_only_pkl(tmp_path / "stage1.pkl")
    with pytest.raises(WeightsError) as err:
        load_model(pkl)
    assert str(pkl) in str(err.value) and "only stage-1 layers" in str(err.value)

    abc = _tiny_model_folder(tmp_path / "abc")
    _edit_card(abc, input_size="abc")
    with pytest.raises(WeightsError) as err:
        load_model(abc)
    assert str(err.value) == (f"{abc / 'card.json'}: model card: spec: model spec field 'input_size' must be a whole "
                              "number, got 'abc'")

    six = _tiny_model_folder(tmp_path / "six")
    _edit_card(six, stages=6)
    with pytest.raises(WeightsError) as err:
        load_model(six)
    message = str(err.value)
    assert "\n" not in message and "6 stages" in message and "does not belong to these weights" in message
    assert str(six / "weights.weights.h5") in message

    # Through the command line: one line on stderr each, no traceback, exit status 2.
    for bad in (pkl, abc, six):
        res = subprocess.run([sys.executable, "-m", "training.cli", "convert-weights", str(bad),
                              str(tmp_path / f"out_{bad.name}")], cwd=ROOT, capture_output=True, text=True,
                             env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=180)
        assert res.returncode == 2, res.stderr
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("cpm convert-weights: ") and str(bad) in lines[0], lines


def test_nan_weights_load_with_one_warning(tmp_path):
    import warnings

    import numpy as np

    from cpm_core.model_card import ModelCard
    from cpm_core.weights import NonFiniteWeightsWarning, load_model, save_model

    folder = _tiny_model_folder(tmp_path / "m")
    model, card = load_model(folder)
    weights = model.get_weights()
    weights[0][0, 0, 0, :3] = [np.nan, np.inf, np.nan]
    weights[1][0] = np.nan  # the same layer's bias
    model.set_weights(weights)
    save_model(model, ModelCard.from_dict(card.to_dict()), folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded, _ = load_model(folder)
    found = [w for w in caught if issubclass(w.category, NonFiniteWeightsWarning)]
    assert len(found) == 1
    text = str(found[0].message)
    assert str(folder) in text and "4 weight value(s) are NaN or infinite (layers sub_stages__sub_conv1)" in text
    assert np.isnan(loaded.get_weights()[0][0, 0, 0, 0])  # still loaded, so the file can be inspected
    with warnings.catch_warnings(record=True) as caught:  # a clean model: no warning
        warnings.simplefilter("always")
        load_model(_tiny_model_folder(tmp_path / "clean"))
    assert not [w for w in caught if issubclass(w.category, NonFiniteWeightsWarning)]
