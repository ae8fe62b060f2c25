"""Thread budgets for the app's pipeline (cpm_core/runtime.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cpm_core.runtime import pipeline_thread_budget


@pytest.mark.parametrize("cores,model", [(1, 1), (2, 1), (4, 3), (16, 15)])
def test_the_model_gets_every_core_but_one(cores, model):
    budget = pipeline_thread_budget(cores)
    assert budget["tf_intra_op"] == model
    assert budget["opencv"] >= 1 and budget["tf_inter_op"] >= 1


def test_budget_reaches_tensorflow_and_opencv_in_a_fresh_process_and_env_wins():
    """TensorFlow takes thread settings only before its first op: a fresh process shows they are applied, and a
    user's TF_NUM_INTRAOP_THREADS / CPM_OPENCV_THREADS override the budget."""
    code = ("import json, cv2, tensorflow as tf\n"
            "from cpm_core.runtime import configure_pipeline_threads\n"
            "b = configure_pipeline_threads(cores=4)\n"
            "tf.constant(1.0) + 1.0\n"
            "late = configure_pipeline_threads(cores=2)\n"
            "print(json.dumps({'b': b, 'intra': tf.config.threading.get_intra_op_parallelism_threads(),\n"
            "                  'cv': cv2.getNumThreads(), 'late': late['tf_applied']}))\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CPM_OPENCV_THREADS="2")
    env.pop("TF_NUM_INTRAOP_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["b"]["tf_applied"] is True and got["intra"] == 3
    assert got["cv"] == 2 and got["b"]["opencv"] == 2
    assert got["late"] is False  # after the first op TensorFlow keeps its pools, and says so


def test_a_slow_model_gets_every_core_and_a_fast_one_leaves_one_to_the_gui():
    from cpm_core.runtime import HEAVY_MODEL_MS

    assert pipeline_thread_budget(2, model_ms=HEAVY_MODEL_MS * 4)["tf_intra_op"] == 2
    assert pipeline_thread_budget(2, model_ms=HEAVY_MODEL_MS / 4)["tf_intra_op"] == 1
    assert pipeline_thread_budget(8, model_ms=HEAVY_MODEL_MS)["tf_intra_op"] == 8


class _FakeClock:
    """`time.perf_counter` for the probe: after its first reading (the deadline's start), readings come in pairs
    around one product, 1 ms apart between products and `durations` (cycled) apart within a pair, so each timed
    matmul "takes" a chosen time and the probe's arithmetic is checked exactly, whatever the machine is doing."""

    def __init__(self, durations: list[float]) -> None:
        self.now, self.durations, self.readings = 100.0, durations, 0

    def __call__(self) -> float:
        if self.readings:
            pair, second = divmod(self.readings - 1, 2)
            self.now += self.durations[pair % len(self.durations)] if second else 0.001
        self.readings += 1
        return self.now


def test_matmul_probe_takes_the_fastest_product_per_core_and_stops_after_its_time(monkeypatch):
    """The probe's rate is 2 n^3 FLOPs over the fastest timed product (the one least disturbed by other
    processes), per usable core, and it keeps timing products until `seconds` have passed. A fake clock makes
    the products take 5, 2 and 3 ms in turn, so the answer is known exactly (no real timing window)."""
    import time

    from cpm_core import runtime

    clock = _FakeClock([0.005, 0.002, 0.003])
    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(runtime, "_usable_cores", lambda: 2)
    n = 64
    rate = runtime.matmul_gflops_per_core(n=n, seconds=0.02)
    assert rate == pytest.approx(2 * n**3 / 0.002 / 1e9 / 2)
    # Products end at 6, 9, 13, 19 and 22 ms: it times until its 20 ms are up, and not one product more.
    assert clock.readings == 1 + 2 * 5


def test_model_cost_estimate_follows_its_gflops_and_the_cpu():
    """The estimate scales with the model's GFLOPs, inversely with the CPU's measured rate, and drops where AMX
    runs bfloat16. The real probe gives a usable rate on any machine, however busy (only its size varies).
    Cards give GFLOPs without building a model; weights without a card count as the port's big model."""
    import math

    from cpm_core.runtime import card_gflops, estimate_model_ms, matmul_gflops_per_core
    from cpm_core.spec import get_preset

    rate = matmul_gflops_per_core(n=128, seconds=0.01)
    assert math.isfinite(rate) and rate > 0
    slow = estimate_model_ms(4.0, rate)
    assert estimate_model_ms(8.0, rate) == pytest.approx(2 * slow)
    assert estimate_model_ms(4.0, 2 * rate) == pytest.approx(slow / 2)
    assert estimate_model_ms(4.0, rate, fast_bfloat16=True) < slow
    assert estimate_model_ms(4.0, 10.0) == pytest.approx(1e3 * 4.0 / (10.0 * 0.8))  # CONV_EFFICIENCY of matmul
    from pathlib import Path

    from cpm_core.model_card import ModelCard
    from cpm_core.weights import default_model_path

    embedded = ModelCard.read(Path(default_model_path("hand")) / "card.json").spec  # the preset it was trained as
    assert card_gflops() == pytest.approx(get_preset(embedded.name).gflops())
    assert card_gflops("/no/such/weights.pkl") == pytest.approx(get_preset("hand-368x6").gflops())
