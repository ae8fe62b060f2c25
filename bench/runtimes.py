"""Which CPU runtime runs a CPM fastest with TensorFlow's heatmaps: one table per preset or model folder.

Rows: TensorFlow (oneDNN) float32 and, on AMX CPUs, bfloat16; TFLite with XNNPACK float32 and int8
(post-training, calibrated on real crops of a TRAINING set: hand_pseudo/train.json or body_pseudo/train.json by
joint count); ONNX Runtime float32 (converted with tf2onnx). Columns: median model-only latency at batch 1
(uint8 crop in, heatmaps out; the runtimes take turns in rounds, so a load change on this shared machine hits
them alike), frames/s, the ratio to TensorFlow float32 in the same run, the max |heatmap difference| from
TensorFlow float32 on real held-out crops of the same training set (not the calibration ones), and, for
trained model folders, PCK@0.2 on hand_more/val.json through `training/evaluate.py`'s `collect_predictions` with
an estimator on that runtime (the model's own orientation rule, e.g. palm-detector angles for the hand model),
and its change from TensorFlow float32. The PCK may run on a subset (`--pck-subjects`, every k-th subject).

    python bench/runtimes.py --presets hand-rt-128x3,body-rt-192x3 --models resources/models/hand_default

`runtime_table(...)` returns the rows (dicts) for other benches (bench/inference.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Convert afresh: the build column times the conversion a first start pays (the estimator caches it after).
os.environ.setdefault("CPM_RUNTIME_CACHE", "off")
# The project root before bench/ (which Python puts first for a script): bench/training.py would shadow the
# training package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CALIBRATION = {21: DATA / "hand_pseudo" / "train.json", 17: DATA / "body_pseudo" / "train.json"}
PCK_DATASETS = {21: DATA / "hand_more" / "val.json", 17: DATA / "body_more" / "val.json"}
ROWS = (("tensorflow", "float32"), ("tensorflow", "bfloat16"), ("tflite", "float32"), ("tflite-int8", "int8"),
        ("onnxruntime", "float32"))


def _load(target: str):
    """(label, float32 Keras model, card, trained) for a preset name or a model folder."""
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.spec import PRESETS

    if target in PRESETS:
        spec = PRESETS[target]
        return target, build_cpm(spec), ModelCard.for_spec(spec), False
    from cpm_core.weights import load_model

    model, card = load_model(target)
    return f"{target} ({card.spec.name})", model, card, bool(card.trained)


def _runtimes(model, card, calibration: np.ndarray | None, log) -> list:
    """Every runtime of ROWS that builds here, as (name, precision, adaptor, seconds to build)."""
    from cpm_core.network import cpu_has_fast_bfloat16
    from cpm_core.runtimes import make_runtime, runtime_available

    out = []
    for name, precision in ROWS:
        if precision == "bfloat16" and not cpu_has_fast_bfloat16():
            continue  # bfloat16 without AMX runs emulated, far slower than float32: no contender
        if not runtime_available(name):
            log(f"  {name}: package missing, skipped")
            continue
        if name == "tflite-int8" and calibration is None:
            log("  tflite-int8: no calibration set for this skeleton, skipped")
            continue
        t = time.perf_counter()
        try:
            rt = make_runtime(name, model, card, precision if name == "tensorflow" else "float32",
                              calibration=calibration)
        except Exception as exc:  # a converter failing on a layer is a result worth printing, not a crash
            log(f"  {name} {precision}: {exc.__class__.__name__}: {str(exc)[:300]}")
            continue
        out.append((name, precision, rt, time.perf_counter() - t))
    return out


def _packaged(target: str, card, log):
    """The int8 graph packed in a model folder (`cpm quantise`), as a row, when there is one and it is usable:
    the file the app runs, beside the bench's own int8 conversion."""
    from cpm_core.estimator import packaged_files
    from cpm_core.runtimes import packaged_int8

    if not card.packaged_runtimes or not Path(target).is_dir():
        return None
    t = time.perf_counter()
    files = packaged_files(target, card)
    rt = packaged_int8(files["tflite-int8"], card) if "tflite-int8" in files else None
    if rt is None:
        log("  packaged int8: not usable, skipped")
        return None
    return ("tflite-int8 (packed)", "int8", rt, time.perf_counter() - t)


def _time(runtimes: list, x: np.ndarray, seconds: float, calls: int = 5) -> list[list[float]]:
    """Per-call seconds of every runtime, taking turns in rounds of `calls` calls until `seconds` have passed."""
    for _, _, rt, _ in runtimes:
        for _ in range(3):
            rt.run(x)
    times: list[list[float]] = [[] for _ in runtimes]
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times[0]) < 10:
        for k, (_, _, rt, _) in enumerate(runtimes):
            for _ in range(calls):
                t = time.perf_counter()
                rt.run(x)
                times[k].append(time.perf_counter() - t)
    return times


def _pck(model, card, runtime, dataset: Path, every: int) -> tuple[float, int, float]:
    """(PCK@0.2, subjects, seconds) of the model on `dataset` through `runtime`, every `every`-th image."""
    import copy

    from cpm_core.dataset.formats import read_dataset
    from cpm_core.estimator import PoseEstimator
    from cpm_core.orientation import model_chirality, model_orientation
    from training.evaluate import collect_predictions, score

    t = time.perf_counter()
    ds = read_dataset(dataset)
    if every > 1:
        ds = copy.copy(ds)
        ds.samples = ds.samples[::every]
    est = PoseEstimator(model, card, warm_up=False, runtime=runtime)
    prov = card.provenance or {}
    margin = float(prov.get("crop_margin") or 1.6)
    min_joints = int(((prov.get("recipe") or {}).get("data") or {}).get("min_joints", 1))
    orientation = "none" if model_orientation(card) != "upright" else (
        "palm" if model_chirality(card) == "canonical" else "search")
    arrays = collect_predictions(est, ds, margin, min_joints, 16, None, orientation)
    res = score(arrays["pred"], arrays["gt"], arrays["labelled"], arrays["norm"], card.skeleton.joints)
    return float(res["pck"]), int(res["subjects"]), time.perf_counter() - t


def runtime_table(presets: list[str] | tuple[str, ...] = (), models: list[str] | tuple[str, ...] = (),
                  seconds: float = 10.0, pck_every: int = 1, pck: bool = True, log=print) -> list[dict]:
    """One row per (model, runtime): runtime, precision, median/p90 ms at batch 1, frames/s, speed-up over
    TensorFlow float32, max |heatmap diff| from it on real held-out crops and TensorFlow's largest |heatmap| there
    (an untrained preset's maps are tiny, so its diffs read against that), PCK@0.2 and its change (trained
    model folders only; None otherwise), build seconds (conversion included)."""
    from training.export import calibration_crops

    rows: list[dict] = []
    for target in [*presets, *models]:
        label, model, card, trained = _load(target)
        log(f"{label}: converting")
        calib_path = CALIBRATION.get(card.spec.num_joints)
        calibration = held_out = None
        if calib_path is not None and calib_path.exists():
            crops = calibration_crops(card, calib_path, 128 + 8, seed=0)
            calibration, held_out = crops[:128], crops[128:]
        runtimes = _runtimes(model, card, calibration, log)
        packed = _packaged(target, card, log)
        if packed is not None:
            runtimes.append(packed)
        s = card.spec.input_size
        x = np.random.default_rng(0).integers(0, 256, (1, s, s, 3), dtype=np.uint8)
        check = held_out if held_out is not None and len(held_out) else np.random.default_rng(1).integers(
            0, 256, (4, s, s, 3), dtype=np.uint8)
        reference = np.concatenate([runtimes[0][2].run(c[None]) for c in check])
        log(f"{label}: timing {', '.join(f'{n} {p}' for n, p, _, _ in runtimes)} for {seconds:g} s")
        times = _time(runtimes, x, seconds)
        base_ms = float(np.median(times[0])) * 1e3
        pck_dataset = PCK_DATASETS.get(card.spec.num_joints)
        base_pck = None
        for (name, precision, rt, build_s), t in zip(runtimes, times):
            got = np.concatenate([rt.run(c[None]) for c in check])
            med = float(np.median(t)) * 1e3
            row = {"model": label, "runtime": name, "precision": precision, "median_ms": med,
                   "p90_ms": float(np.percentile(t, 90)) * 1e3, "fps": 1e3 / med, "speedup": base_ms / med,
                   "max_abs_diff": float(np.abs(got - reference).max()), "peak": float(np.abs(reference).max()),
                   "build_s": build_s, "calls": len(t),
                   "pck": None, "pck_change": None, "pck_subjects": None}
            if pck and trained and pck_dataset is not None and pck_dataset.exists():
                value, n, took = _pck(model, card, rt, pck_dataset, pck_every)
                base_pck = value if base_pck is None else base_pck
                row.update(pck=value, pck_change=value - base_pck, pck_subjects=n)
                log(f"  {name} {precision}: PCK@0.2 {value:.4f} on {n} subjects ({took:.0f} s)")
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table, one block per model."""
    head = ("| model | runtime | precision | median ms | p90 ms | frames/s | vs TF fp32 | max abs diff (TF peak) | "
            "PCK@0.2 (subjects) | PCK change | build s |")
    lines = [head, "|" + "|".join("---" for _ in head.split("|")[1:-1]) + "|"]
    for r in rows:
        pck = "-" if r["pck"] is None else f"{r['pck']:.4f} ({r['pck_subjects']})"
        change = "-" if r["pck_change"] is None else f"{100 * r['pck_change']:+.2f} pt"
        lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} "
                     f"| {r['fps']:.1f} | {r['speedup']:.2f}x | {r['max_abs_diff']:.2g} ({r['peak']:.2g}) | {pck} | "
                     f"{change} | {r['build_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    from machine import describe_machine

    from cpm_core.network import cpu_has_fast_bfloat16
    from cpm_core.runtimes import default_threads

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="", help="comma-separated preset names (random weights: no PCK)")
    ap.add_argument("--models", default="", help="comma-separated model folders (trained: with PCK)")
    ap.add_argument("--seconds", type=float, default=10.0, help="timing budget per model, shared by its runtimes")
    ap.add_argument("--pck-every", type=int, default=1, help="PCK on every k-th val image (1: all)")
    ap.add_argument("--no-pck", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="threads for every runtime (0: TensorFlow's default, every core); the app gives a fast "
                         "model all cores but one (cpm_core/runtime.py)")
    args = ap.parse_args()
    if args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    presets = [p for p in args.presets.split(",") if p]
    models = [m for m in args.models.split(",") if m]
    if not presets and not models:
        presets, models = ["hand-rt-128x3"], [str(ROOT / "resources" / "models" / "hand_default")]
    rows = runtime_table(presets, models, args.seconds, args.pck_every, not args.no_pck,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    import tensorflow as tf

    try:
        from ai_edge_litert import __version__ as litert
    except ImportError:
        litert = "tf.lite"
    try:
        from onnxruntime import __version__ as ort
    except ImportError:
        ort = "missing"
    print(f"machine: {describe_machine()}; AMX bfloat16: {cpu_has_fast_bfloat16()}; threads {default_threads()}; "
          f"TF {tf.__version__}, LiteRT {litert}, ONNX Runtime {ort}")
    print("model-only latency at batch 1 (uint8 crop in, float32 heatmaps of every stage out); runtimes take turns; "
          "max abs diff vs TensorFlow float32 on 8 held-out real crops; int8 calibrated on 128 training crops")
    print(format_table(rows))


if __name__ == "__main__":
    main()
