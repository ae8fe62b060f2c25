"""Does labelling the frames `cpm suggest` picks teach a model more than labelling evenly spaced or random ones?
(issue 23, item 2)

    nice -n 15 python bench/active_labelling.py [--k 25,50,100] [--seeds 0,1] [--steps 150]
                                               [--out runs/active_labelling] [--orientation label] [--smoke]

The machine labels of `../shared/data` are the oracle: "labelling" a frame means taking its MediaPipe labels.

Protocol (fixed before the full run; the defaults of this script):
- Pool: the frames of `hand_more/train.json` (571 images, 663 hands, 11 source groups: a webcam hand video, two
  hand-object videos, a signer's video frames, phone photos of many people; 3 videos and several photo sets), in
  the file's order, which is time order within each video. Chosen over `train2.json` (1071 photos from 3 photo
  sets): more varied scenes, and videos, where picking neighbouring frames is the failure to avoid. Frames
  with no hand of >= 3 labelled joints are left out. The val file is never in the pool nor used for any
  choice: `load_pool` refuses a pool sharing an image file or a source (video / photo) with it.
- Start: the start model is `training/recipes/init/hand_v1` (hand-rt-128x3 trained on `hand_pseudo/train`
  only, so it has seen none of the pool; not `resources/models/hand_default`, which was fine-tuned on the pool).
  The start labelled subset is 25 pool frames drawn at random with a fixed seed (`START_SEED`), the same for
  every run; the other frames are the candidates.
- Strategies, each adding K candidate frames (K in {25, 50, 100}):
  (a) suggest: every candidate scored by the start model as `cpm suggest` scores a folder of images
      (`cpm_core.suggest.score_sources` on the frames' files: each frame run whole through `UprightFollower`,
      components stage shift, stage divergence, low peak, multi-modal, bones, gated by presence; `jump` is 0,
      frames being scored one by one), then `cpm_core.suggest.select_frames(scores, K, min_gap=15, seed)`
      with each frame's video and frame index, so picks of one video stay 15 frames (half a second at 30 fps,
      `cpm suggest`'s default gap) apart while there are enough others, and the k-means on thumbnails
      spreads the picks;
  (b) uniform: K candidates evenly spaced over the candidates in pool order (position floor((i + phase) * n / K),
      phase 0.5 for seed 0, shifted by the golden ratio for each further seed);
  (c) random: the first K of a seeded permutation of the candidates (nested: K=25 lies inside K=50).
  Plus two references: the start model as it is, and the start subset alone (K = 0), fine-tuned the same way.
- Fine-tune: the real training code in-process (`training.config.load_config` on a generated TOML written
  into each run's folder, `training.data.make_pipeline`, `training.loop.run_loop`; `cpm train RUN/config.toml`
  runs the same), from the start model's weights, on the start subset + the K frames: 150 steps of batch 16,
  Adam, lr 5e-4 cosine with 8 warm-up steps, EMA 0.998 (ramped), bfloat16 where the CPU has it
  (`precision = "auto"`), sigma 2, and `hand_default.toml`'s data and augmentation settings (upright,
  canonical chirality, margin 1.6, copy-paste onto `backgrounds/images`, occluders, blur, JPEG, hue). The
  training seed is the run's seed, so strategies at one seed share it. The crops are cut once for the whole
  pool (`build_cache`) and each run takes its frames' subjects from it (what building the cache from the
  run's own `train.json` gives).
- Measure: PCK@0.2 of the exported model on every hand of `hand_more/val.json` with >= 3 labelled joints
  (230; `cpm eval`'s crops, margin 1.6, float32), with the crops turned by the labelled angle and side
  (`--orientation label`, `cpm eval --orientation label`): the app's palm orientation costs 3x the time per
  evaluation here (29 s against 9 s for 230 hands) and adds the palm detector's misses, which no labelling
  strategy changes. For the start model the two read 0.535 (label) and 0.513 (palm).
- Intervals: 95% bootstrap over val subjects (circular blocks of ceil(n^(1/3)) = 7 consecutive hands, as
  `cpm eval` does, because neighbouring frames of a val video are not independent), of the mean over seeds;
  the seeds' own spread is shown by the per-seed values. Paired differences (suggest - random, suggest -
  uniform, same seeds, same resampled subjects) get the same interval.
- Size: 3 strategies x 3 K x 2 seeds + 2 start-only runs = 20 fine-tunes. Measured before the run: about 0.67 s
  a step at nice 15 beside a training run (load ~5 on 2 cores), ~20 s of set-up and saving, 9 s to evaluate:
  about 2 min a run, 45 min in all.

Measured with these defaults on 2026-12-01 (Intel Xeon, 2 cores, beside a body distillation run, load 3-9; 48.8 min):
no strategy is better than the others beyond the seeds' noise. Mean PCK@0.2 over 2 seeds: start model 0.535;
start subset only 0.632; K=25 suggest 0.642, uniform 0.654, random 0.632; K=50 0.615, 0.640, 0.627; K=100 0.641,
0.651, 0.624. Two seeds of one set-up differ by up to 0.048 (the start subset alone: 0.654 and 0.609), more than
any difference between strategies; the val-subject intervals of the paired differences (e.g. suggest - uniform
at K=50: -0.025, -0.038 to -0.011) leave that training noise out. Suggest did pick what the model was unsure of
(mean score of its picks 0.52 at K=25, the others' 0.26-0.28), mostly rf_lebanese_handgestures phone photos
(16 of 25, 74-78 of 100, against about a third for uniform and random). And at 150 steps the K frames hardly
mattered at all: the start subset alone already gives most of the gain over the start model.

Writes `OUT/results.json` (every run: picks, PCK, per-subject hits; the table; machine; wall time) and
`OUT/table.md`, and prints the markdown table. Runs whose `result.json` exists are not run again (a killed
bench resumes). `--smoke`: a tiny version (40 candidates, K=4, one seed, 3 steps, a fifth of val) that checks
the plumbing in a few minutes, into `runs/active_labelling_smoke`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
# The project root ahead of bench/: `training` must be the package, not bench/training.py.
sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
POOL = DATA / "hand_more" / "train.json"
VAL = DATA / "hand_more" / "val.json"
START_MODEL = ROOT / "training" / "recipes" / "init" / "hand_v1"
BACKGROUNDS = DATA / "backgrounds" / "images"
STRATEGIES = ("suggest", "uniform", "random")
START_SIZE = 25
START_SEED = 20230
MIN_GAP = 15  # frames of one video: half a second at 30 fps, `cpm suggest`'s default gap
MIN_JOINTS = 3
MARGIN = 1.6
CACHE_SCALE = 1.6
THRESHOLD = 0.2
GOLDEN = 0.6180339887498949
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")

# hand_default.toml's data/augment settings for a hand fine-tune (same values; copied so that the bench does not
# change when the recipe does).
TOML_TEMPLATE = """# Generated by bench/active_labelling.py; `cpm train {run_dir}/config.toml` runs the same fine-tune.
name = {name}
output = {output}

[data]
train = [{train}]
val = []
margin = {margin}
cache_scale = {cache_scale}
min_joints = {min_joints}
orientation = "upright"
chirality = "canonical"

[model]
preset = "hand-rt-128x3"
init = {init}

[train]
batch = {batch}
steps = {steps}
optimizer = "adam"
lr = 0.0005
schedule = "cosine"
warmup_steps = {warmup}
precision = "auto"
sigma = 2.0
log_every = 25
eval_every = 0
checkpoint_every = 0
keep_checkpoints = 1
seed = {seed}
ema = 0.998

[augment]
rotation = 50.0
scale = [0.6, 1.4]
translate = 0.12
flip = false
brightness = 0.2
contrast = 0.3
saturation = 0.3
erase = 0.2
backgrounds = [{backgrounds}]
paste_background = 0.4
paste_subject = 0.2
occluder = 0.25
motion_blur = 0.15
defocus_blur = 0.15
blur_size = 9
jpeg = 0.3
jpeg_quality = [20, 90]
hue = 8.0
channel_gain = 0.1
"""


# ------------------------------------------------------------------------------------------------ the pool
@dataclass
class PoolFrame:
    """One pool image: its position in the pool, file (absolute), video or photo it came from and frame index
    there, source group (the folder part of the source, e.g. `sam2_02_cups`) and COCO image id."""

    index: int
    image: str
    source: str
    frame: int
    group: str
    image_id: int

    @property
    def is_video(self) -> bool:
        return self.source.lower().endswith(VIDEO_SUFFIXES)


@dataclass
class Pool:
    frames: list[PoolFrame]
    coco: dict  # the pool file's JSON, for writing subsets
    path: Path


def _labelled_joints(ann: dict) -> int:
    kp = ann.get("keypoints") or []
    return sum(1 for v in kp[2::3] if v > 0)


def _coco_frames(path: Path, coco: dict, min_joints: int) -> list[PoolFrame]:
    usable = {a["image_id"] for a in coco.get("annotations", []) if _labelled_joints(a) >= min_joints}
    out = []
    for img in coco.get("images", []):
        if img["id"] not in usable:
            continue
        source = str(img.get("source") or img["file_name"])
        frame = int(img.get("frame") or 0)
        image = str((path.parent / img["file_name"]).resolve())
        group = source.split("/")[0] if "/" in source else Path(source).stem
        out.append(PoolFrame(len(out), image, source, frame, group, int(img["id"])))
    return out


def load_pool(pool_json: str | Path, val_jsons: list[str | Path], min_joints: int = MIN_JOINTS) -> Pool:
    """The pool's frames (images with a hand of >= `min_joints` labelled joints) in the file's order.

    Raises ValueError if any pool image file or source (a video, a photo) is also in one of `val_jsons`: nothing
    of the val set may be labelled, scored or picked."""
    path = Path(pool_json)
    coco = json.loads(path.read_text(encoding="utf-8"))
    frames = _coco_frames(path, coco, min_joints)
    if not frames:
        raise ValueError(f"{path}: no image with a hand of >= {min_joints} labelled joints")
    keys = Counter((f.source, f.frame) for f in frames)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise ValueError(f"{path}: (source, frame) {dup[0]} names {keys[dup[0]]} images")
    for val in val_jsons:
        vpath = Path(val)
        vcoco = json.loads(vpath.read_text(encoding="utf-8"))
        vframes = _coco_frames(vpath, vcoco, 0)
        images = {f.image for f in vframes} & {f.image for f in frames}
        sources = {f.source for f in vframes} & {f.source for f in frames}
        if images or sources:
            what = f"image {sorted(images)[0]}" if images else f"source {sorted(sources)[0]}"
            raise ValueError(f"the pool {path} shares {len(images)} image(s) and {len(sources)} source(s) with the "
                             f"val set {vpath} (first: {what}); a val frame must never be labelled or picked")
    return Pool(frames, coco, path)


def start_subset(n: int, size: int, seed: int = START_SEED) -> list[int]:
    """The start labelled subset: `size` pool positions drawn at random with `seed`, sorted."""
    if not 0 <= size < n:
        raise ValueError(f"the start subset ({size}) must be smaller than the pool ({n})")
    return sorted(int(i) for i in np.random.default_rng(seed).choice(n, size, replace=False))


# ------------------------------------------------------------------------------------------------ selection
def pick_uniform(candidates: list[int], k: int, seed: int) -> list[int]:
    """`k` candidates evenly spaced over `candidates` (in pool order): positions floor((i + phase) * n / k)."""
    n = len(candidates)
    phase = (0.5 + seed * GOLDEN) % 1.0
    return [candidates[min(n - 1, int(math.floor((i + phase) * n / k)))] for i in range(k)]


def pick_random(candidates: list[int], k: int, seed: int) -> list[int]:
    """The first `k` of a permutation of `candidates` seeded by `seed` (so smaller K lie inside larger)."""
    perm = np.random.default_rng(seed).permutation(len(candidates))
    return [candidates[int(i)] for i in perm[:k]]


def score_candidates(estimator, pool: Pool, candidates: list[int], progress=None) -> dict:
    """{pool position: FrameScore} for `candidates`, scored by `estimator` as `cpm suggest` scores a folder of
    images (`cpm_core.suggest.score_sources` on the frames' files), each FrameScore then carrying the frame's
    video (or photo) and frame index, so that `select_frames`'s time gap applies within a video."""
    from cpm_core.suggest import score_sources

    by_path = {}
    for i in candidates:
        by_path[pool.frames[i].image] = i
    done = [0]

    def step(src: str, _done: int, _total) -> None:
        done[0] += 1
        if progress:
            progress(done[0], len(candidates))

    scores = score_sources(estimator, [pool.frames[i].image for i in candidates], 1, step)
    out = {}
    for s in scores:
        i = by_path.get(s.source)
        if i is None:
            i = by_path.get(str(Path(s.source).resolve()))
        if i is None:
            raise RuntimeError(f"score for an image not asked for: {s.source}")
        f = pool.frames[i]
        out[i] = dataclasses.replace(s, source=f.source, frame=f.frame)
    return out


def pick_suggest(scores: dict, candidates: list[int], k: int, seed: int, min_gap: int = MIN_GAP) -> list[int]:
    """`k` candidates by `cpm_core.suggest.select_frames` on their scores (uncertain, varied, apart in time)."""
    from cpm_core.suggest import select_frames

    listed = [scores[i] for i in candidates if i in scores]
    where = {(scores[i].source, scores[i].frame): i for i in candidates if i in scores}
    picked = select_frames(listed, k, min_gap=min_gap, seed=seed)
    return [where[(p.source, p.frame)] for p in picked]


def select(strategy: str, candidates: list[int], k: int, seed: int, scores: dict | None = None,
           min_gap: int = MIN_GAP) -> list[int]:
    """`k` distinct pool positions out of `candidates` by `strategy` (suggest, uniform, random)."""
    if not 0 < k <= len(candidates):
        raise ValueError(f"K = {k} must be between 1 and the number of candidates ({len(candidates)})")
    if strategy == "uniform":
        return pick_uniform(candidates, k, seed)
    if strategy == "random":
        return pick_random(candidates, k, seed)
    if strategy == "suggest":
        if scores is None:
            raise ValueError("the suggest strategy needs the candidates' scores")
        return pick_suggest(scores, candidates, k, seed, min_gap)
    raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")


# ------------------------------------------------------------------------------------------------ statistics
def seed_mean_pck(hits: np.ndarray, counts: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
    """Mean over runs (rows of `hits`, (R, N)) of each run's PCK, on all subjects or on resampled `idx`
    ((B, N) -> (B,))."""
    if idx is None:
        return (hits.sum(axis=1) / counts.sum()).mean()
    c = counts[idx].sum(axis=1)
    return (hits[:, idx].sum(axis=2) / c).mean(axis=0)


def interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------------------------ the runs
def write_subset(pool: Pool, positions: list[int], path: Path) -> None:
    """The pool file restricted to `positions` (in pool order), image paths made absolute."""
    ids = {pool.frames[i].image_id for i in positions}
    coco = {k: v for k, v in pool.coco.items() if k not in ("images", "annotations")}
    images = []
    for img in pool.coco["images"]:
        if img["id"] in ids:
            images.append({**img, "file_name": str((pool.path.parent / img["file_name"]).resolve())})
    coco["images"] = images
    coco["annotations"] = [a for a in pool.coco["annotations"] if a["image_id"] in ids]
    path.write_text(json.dumps(coco), encoding="utf-8")


def write_config(run_dir: Path, name: str, steps: int, seed: int, batch: int) -> Path:
    q = json.dumps
    text = TOML_TEMPLATE.format(run_dir=run_dir, name=q(name), output=q(str(run_dir)),
                                train=q(str(run_dir / "train.json")), margin=MARGIN, cache_scale=CACHE_SCALE,
                                min_joints=MIN_JOINTS, init=q(str(START_MODEL)), batch=batch, steps=steps,
                                warmup=max(1, round(0.05 * steps)), seed=seed, backgrounds=q(str(BACKGROUNDS)))
    path = run_dir / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def build_pool_cache(pool: Pool, log):
    """Every pool subject cut once (the recipe's margin, cache scale, upright, canonical), and for each pool
    position the cache rows of its hands."""
    from training.data import build_cache, load_datasets

    ds = load_datasets([str(pool.path)], log)
    cache = build_cache(ds, 128, MARGIN, CACHE_SCALE, MIN_JOINTS, log, "upright", "canonical")
    rows: dict[str, list[int]] = {}
    for r, src in enumerate(cache.sources):
        rows.setdefault(str(Path(src).resolve()), []).append(r)
    return cache, {f.index: rows.get(f.image, []) for f in pool.frames}


def finetune(config: Path, cache, rows: list[int], run_dir: Path) -> Path:
    """Fine-tune as `cpm train config` does, on the given cache rows; returns the exported model's folder."""
    from training.config import load_config
    from training.data import make_pipeline
    from training.events import EventWriter
    from training.loop import StopFlag, run_loop

    cfg = load_config(config)
    spec = cfg.model_spec(cache.skeleton.num_joints)
    sub = cache.subset(np.asarray(rows, dtype=np.int64))
    pipeline = make_pipeline(sub, spec.input_size, spec.stride, cfg.train.batch, cfg.augment, cfg.data.cache_scale,
                             cfg.train.sigma, seed=cfg.train.seed)
    with open(run_dir / "events.jsonl", "w", encoding="utf-8") as events:
        model_dir = run_loop(cfg, spec, cache.skeleton, pipeline, None, EventWriter(events), StopFlag(), False,
                             "train", steps_per_epoch=max(1, len(sub) // cfg.train.batch), num_train=len(sub))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return Path(model_dir)


def evaluate(model_dir: Path, val_ds, orientation: str) -> dict:
    """PCK@0.2 on `val_ds` as `cpm eval --orientation ORIENTATION` measures it, with per-subject hits."""
    from cpm_core.estimator import PoseEstimator
    from cpm_core.metrics import joint_errors
    from cpm_core.weights import load_model
    from training.evaluate import collect_predictions

    model, card = load_model(model_dir)
    est = PoseEstimator(model, card, warm_up=False, precision="float32")
    a = collect_predictions(est, val_ds, MARGIN, MIN_JOINTS, orientation=orientation)
    lab = np.asarray(a["labelled"], bool)
    hits = ((joint_errors(a["pred"], a["gt"], a["norm"]) <= THRESHOLD) & lab).sum(axis=1)
    counts = lab.sum(axis=1)
    return {"pck": float(hits.sum() / counts.sum()), "hits": hits.astype(int).tolist(),
            "counts": counts.astype(int).tolist(), "images": list(a["images"])}


def _scores_to_json(scores: dict) -> list[dict]:
    return [{"pos": i, **s.to_dict(), "thumb": s.thumb.astype(int).tolist()} for i, s in sorted(scores.items())]


def _scores_from_json(items: list[dict]) -> dict:
    from cpm_core.suggest import FrameScore

    return {d["pos"]: FrameScore(d["source"], d["frame"], d["score"], d["reasons"], np.asarray(d["thumb"], np.uint8))
            for d in items}


# ------------------------------------------------------------------------------------------------ report
def summarise(runs: list[dict], ks: list[int], seeds: list[int], resamples: int = 2000) -> dict:
    """Table rows (strategy x K, plus references) and paired differences, with bootstrap intervals over val
    subjects."""
    by = {(r["strategy"], r["k"], r["seed"]): r for r in runs}
    counts = np.asarray(runs[0]["counts"], np.float64)
    from cpm_core.metrics import block_bootstrap_indices

    _, idx = block_bootstrap_indices(len(counts), resamples)

    def cell(strategy: str, k: int) -> dict | None:
        rs = [by[(strategy, k, s)] for s in seeds if (strategy, k, s) in by]
        if not rs:
            return None
        hits = np.asarray([r["hits"] for r in rs], np.float64)
        lo, hi = interval(seed_mean_pck(hits, counts, idx))
        return {"strategy": strategy, "k": k, "mean": float(seed_mean_pck(hits, counts)), "ci95": [lo, hi],
                "seeds": [r["seed"] for r in rs], "per_seed": [r["pck"] for r in rs],
                "mean_pick_score": float(np.mean([r["pick_score"] for r in rs])) if k else None}

    rows = []
    for key in (("start model", 0), ("start subset only", 0)):
        c = cell(*key)
        if c:
            rows.append(c)
    for k in ks:
        for s in STRATEGIES:
            c = cell(s, k)
            if c:
                rows.append(c)
    diffs = []
    for k in ks:
        for other in ("random", "uniform"):
            common = [s for s in seeds if ("suggest", k, s) in by and (other, k, s) in by]
            if not common:
                continue
            a = np.asarray([by[("suggest", k, s)]["hits"] for s in common], np.float64)
            b = np.asarray([by[(other, k, s)]["hits"] for s in common], np.float64)
            boot = seed_mean_pck(a, counts, idx) - seed_mean_pck(b, counts, idx)
            lo, hi = interval(boot)
            diffs.append({"k": k, "vs": other, "diff": float(seed_mean_pck(a, counts) - seed_mean_pck(b, counts)),
                          "ci95": [lo, hi], "seeds": common,
                          "per_seed": [by[("suggest", k, s)]["pck"] - by[(other, k, s)]["pck"] for s in common]})
    return {"rows": rows, "diffs": diffs, "subjects": len(counts), "block": int(np.ceil(len(counts) ** (1 / 3)))}


def markdown(summary: dict) -> str:
    lines = ["| strategy | K | mean PCK@0.2 | 95% interval | per seed | mean suggest score of the picks |",
             "|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        per = ", ".join(f"{v:.3f}" for v in r["per_seed"])
        ps = "-" if r["mean_pick_score"] is None else f"{r['mean_pick_score']:.3f}"
        lines.append(f"| {r['strategy']} | {r['k']} | {r['mean']:.3f} | {r['ci95'][0]:.3f} to {r['ci95'][1]:.3f} "
                     f"| {per} | {ps} |")
    if summary["diffs"]:
        lines += ["", "| K | suggest minus | difference | 95% interval | per seed |", "|---|---|---|---|---|"]
        for d in summary["diffs"]:
            per = ", ".join(f"{v:+.3f}" for v in d["per_seed"])
            lines.append(f"| {d['k']} | {d['vs']} | {d['diff']:+.3f} | {d['ci95'][0]:+.3f} to {d['ci95'][1]:+.3f} "
                         f"| {per} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--k", default="25,50,100", help="frames added per run (default 25,50,100)")
    p.add_argument("--seeds", default="0,1", help="seeds (selection and training; default 0,1)")
    p.add_argument("--steps", type=int, default=150, help="fine-tuning steps per run (default 150)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--start", type=int, default=START_SIZE, help="size of the start labelled subset (default 25)")
    p.add_argument("--orientation", default="label", choices=("label", "palm", "search", "none"),
                   help="how val crops are turned for the PCK (default label; palm is the app's)")
    p.add_argument("--pool", default=str(POOL))
    p.add_argument("--val", default=str(VAL))
    p.add_argument("--out", default=None, help="output folder (default runs/active_labelling[_smoke])")
    p.add_argument("--no-references", action="store_true", help="skip the start-model and start-subset rows")
    p.add_argument("--smoke", action="store_true", help="tiny version: checks the plumbing in a few minutes")
    args = p.parse_args(argv)
    t_start = time.time()
    ks, seeds = _ints(args.k), _ints(args.seeds)
    steps, start_size = args.steps, args.start
    if args.smoke:
        ks, seeds, steps, start_size = [4], [0], 3, 4
    out = Path(args.out or (ROOT / "runs" / ("active_labelling_smoke" if args.smoke else "active_labelling")))
    out.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    from machine import cpu_name  # bench/machine.py (bench/ is on the path when run as a script)

    machine = cpu_name()
    log(f"machine: {machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    pool = load_pool(args.pool, [args.val])
    start = start_subset(len(pool.frames), start_size)
    start_set = set(start)
    candidates = [f.index for f in pool.frames if f.index not in start_set]
    if args.smoke:
        candidates = [candidates[int(i * len(candidates) / 40)] for i in range(40)]
    log(f"pool {args.pool}: {len(pool.frames)} frames, start subset {len(start)}, {len(candidates)} candidates")

    from cpm_core.dataset.formats import read_dataset
    from cpm_core.estimator import PoseEstimator

    val_ds = read_dataset(args.val)
    if args.smoke:
        val_ds.samples = val_ds.samples[::5]

    # Scores of the candidates by the start model (kept: a resumed bench does not score again).
    score_file = out / "scores.json"
    scores = None
    if score_file.exists():
        saved = json.loads(score_file.read_text(encoding="utf-8"))
        if saved.get("candidates") == candidates and saved.get("model") == str(START_MODEL):
            scores = _scores_from_json(saved["scores"])
    if scores is None:
        t0 = time.time()
        estimator = PoseEstimator.from_path(START_MODEL)
        scores = score_candidates(estimator, pool, candidates,
                                  progress=lambda d, n: log(f"scored {d}/{n}") if d % 100 == 0 or d == n else None)
        score_file.write_text(json.dumps({"model": str(START_MODEL), "candidates": candidates,
                                          "seconds": round(time.time() - t0, 1), "scores": _scores_to_json(scores)}),
                              encoding="utf-8")
        log(f"scored {len(scores)} candidates in {time.time() - t0:.0f} s")
        del estimator

    plan = []  # (strategy, k, seed, picks)
    if not args.no_references:
        plan += [("start subset only", 0, s, []) for s in seeds]
    for k in ks:
        for strategy in STRATEGIES:
            for s in seeds:
                plan.append((strategy, k, s, select(strategy, candidates, k, s, scores)))

    runs: list[dict] = []
    if not args.no_references:
        ref = out / "start_model" / "result.json"
        if not ref.exists():
            ref.parent.mkdir(parents=True, exist_ok=True)
            res = evaluate(START_MODEL, val_ds, args.orientation)
            ref.write_text(json.dumps({"strategy": "start model", "k": 0, "picks": [], "pick_score": 0.0, **res}),
                           encoding="utf-8")
        start_res = json.loads(ref.read_text(encoding="utf-8"))
        runs += [{**start_res, "seed": s} for s in seeds]  # no training: the same numbers at every seed
        log(f"start model: PCK@0.2 {start_res['pck']:.4f} ({args.orientation})")

    cache = rows = None
    for n, (strategy, k, seed, picks) in enumerate(plan, 1):
        name = f"{'start' if k == 0 else strategy}_k{k:03d}_s{seed}"
        run_dir = out / name
        result_file = run_dir / "result.json"
        if result_file.exists():
            done = json.loads(result_file.read_text(encoding="utf-8"))
            if done.get("picks") == [pool.frames[i].image for i in picks] and done.get("steps") == steps:
                runs.append(done)
                log(f"[{n}/{len(plan)}] {name}: kept (PCK {done['pck']:.4f})")
                continue
        if cache is None:
            t0 = time.time()
            cache, rows = build_pool_cache(pool, log)
            log(f"pool cache: {len(cache)} hands in {time.time() - t0:.0f} s")
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        train = sorted(start + picks)
        write_subset(pool, train, run_dir / "train.json")
        config = write_config(run_dir, f"active labelling {name}", steps, seed, args.batch)
        t0 = time.time()
        model_dir = finetune(config, cache, [r for i in train for r in rows[i]], run_dir)
        t_train = time.time() - t0
        res = evaluate(model_dir, val_ds, args.orientation)
        t_all = time.time() - t0
        pick_score = float(np.mean([scores[i].score for i in picks])) if picks else 0.0
        record = {"strategy": strategy, "k": k, "seed": seed, "steps": steps, "batch": args.batch,
                  "picks": [pool.frames[i].image for i in picks], "pick_score": pick_score,
                  "pick_groups": dict(Counter(pool.frames[i].group for i in picks)),
                  "train_frames": len(train), "train_hands": sum(len(rows[i]) for i in train),
                  "train_s": round(t_train, 1), "run_s": round(t_all, 1), **res}
        result_file.write_text(json.dumps(record), encoding="utf-8")
        runs.append(record)
        log(f"[{n}/{len(plan)}] {name}: PCK@0.2 {res['pck']:.4f}, train {t_train:.0f} s, all {t_all:.0f} s, "
            f"load {os.getloadavg()[0]:.1f}")
        import keras

        keras.backend.clear_session()
        gc.collect()

    summary = summarise(runs, ks, seeds)
    wall = time.time() - t_start
    table = markdown(summary)
    head = (f"Active labelling on {Path(args.pool).name} (pool {len(pool.frames)} frames, start subset {len(start)}, "
            f"{len(candidates)} candidates), start model {START_MODEL.name}, {steps} steps of batch {args.batch}, "
            f"PCK@0.2 on {Path(args.val).parent.name}/{Path(args.val).name} ({summary['subjects']} hands, "
            f"orientation {args.orientation}); intervals: 95% block bootstrap over val hands (blocks of "
            f"{summary['block']}) of the mean over seeds {seeds}.\nMachine: {machine}, {os.cpu_count()} cores; "
            f"wall time {wall / 60:.1f} min (this invocation)."
            + ("\nSMOKE RUN: tiny sizes, the numbers mean nothing." if args.smoke else ""))
    text = head + "\n\n" + table + "\n"
    (out / "table.md").write_text(text, encoding="utf-8")
    doc = {"pool": args.pool, "val": args.val, "start_model": str(START_MODEL), "start_subset": start,
           "start_seed": START_SEED, "candidates": len(candidates), "ks": ks, "seeds": seeds, "steps": steps,
           "batch": args.batch, "orientation": args.orientation, "min_gap": MIN_GAP, "smoke": args.smoke,
           "machine": machine, "cores": os.cpu_count(), "wall_time_s": round(wall, 1),
           "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
           "summary": summary, "runs": runs}
    (out / "results.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
