"""PoseEstimator: frame in, joints in frame pixels out, with every stage's heatmaps for the views.

The model runs on one runtime from `cpm_core.runtimes` (TensorFlow's traced `tf.function` with a fixed input
signature, or the same graph converted for ONNX Runtime or TFLite), always uint8 images in, normalised inside,
so it is traced or converted once and warmed once; per-frame Python work is only the crop and the peak decoding.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from cpm_core.heatmaps import DEFAULT_SIGMA, decode_predictions, grid_to_input, stage_peak_confidence
from cpm_core.model_card import ModelCard
from cpm_core.network import cpu_has_fast_bfloat16
from cpm_core.preprocess import CropBox, CropTransform
from cpm_core.presence import MIDPOINT_BLOBS, presence_score
from cpm_core.runtimes import (
    RUNTIMES,
    Runtime,
    TensorFlowRuntime,
    choose_runtime,
    make_runtime,
    packaged_int8,
    runtime_available,
)


@dataclass
class PoseResult:
    """One subject's pose in one frame."""

    keypoints: np.ndarray  # (J, 3): x, y in frame pixels, confidence in [0, 1]
    heatmaps: np.ndarray  # (stages, h, w, C) float32, C = joints + background
    crop: CropTransform
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds: preprocess, model, decode
    oriented_by: str = ""  # upright models: where the crop's angle and side came from (palm, search, followed)
    target_sigma: float = 2.0  # the training targets' sigma in heatmap cells (what `presence` measures blobs by)
    presence_midpoint: float = MIDPOINT_BLOBS  # joint blobs at which `presence` is 0.5 (the model card's)

    @property
    def num_joints(self) -> int:
        return len(self.keypoints)

    def stage_confidence(self) -> np.ndarray:
        """Mean peak confidence per stage, (stages,)."""
        return stage_peak_confidence(self.heatmaps, self.num_joints)

    @cached_property
    def presence(self) -> float:
        """How sure the heatmaps are that a subject is in the crop at all, in [0, 1] (`cpm_core.presence`); below
        `cpm_core.presence.THRESHOLD` the pipeline draws no pose and trackers search again. Computed once per
        result: the follower, `cpm infer` and the app each read it."""
        return presence_score(self.heatmaps, self.num_joints, self.target_sigma, self.presence_midpoint)

    @property
    def valid(self) -> bool:
        return bool(np.isfinite(self.keypoints).all())


class PoseEstimator:
    """Runs one CPM on frames. Not thread-safe: give each thread its own estimator or serialise calls."""

    def __init__(self, model: keras.Model, card: ModelCard, warm_up: bool = True, precision: str = "auto",
                 runtime: str | Runtime = "auto", calibration: np.ndarray | None = None,
                 packaged: dict[str, bytes] | None = None):
        """`precision`: 'float32', 'bfloat16', or 'auto' (bfloat16 where the CPU has AMX tiles; heatmaps then
        differ from float32 by about 1% of their range, far below what moves a peak).

        `runtime`: 'tensorflow', 'tflite', 'tflite-int8' (with `calibration`: real uint8 crops, e.g.
        `training.export.calibration_crops`), 'onnxruntime', a ready `cpm_core.runtimes` adaptor, or 'auto': with
        `precision='auto'`, the fastest runtime whose heatmaps match TensorFlow's by the rule measured in
        bench/runtimes.py (`cpm_core.runtimes.choose_runtime`: TensorFlow, in bfloat16 on AMX CPUs, for plain
        convolutions; ONNX Runtime for depthwise ones). An explicit precision asks for TensorFlow's own
        numbers at that precision (evaluation, training, the card's PCK), so 'auto' then keeps TensorFlow. A
        runtime whose package is missing falls back to TensorFlow silently.

        `packaged`: runtime files that came checked with the model (`from_path` reads them from the model folder,
        `cpm_core.packaged_runtimes`): with `runtime='auto'` and `precision='auto'`, or `runtime='tflite-int8'`
        without calibration crops, a packaged int8 graph is used, having been checked for PCK when it was made
        (`cpm quantise`); it is the fastest runtime for plain convolutions (bench/runtimes.py)."""
        packaged = packaged or {}
        explicit = precision != "auto"
        if precision == "auto":
            precision = "bfloat16" if cpu_has_fast_bfloat16() else "float32"
        self.card = card
        self.spec = card.spec
        self._keras = model
        if not isinstance(runtime, str):
            self.runtime = runtime
        elif "tflite-int8" in packaged and calibration is None and (
                runtime == "tflite-int8" or (runtime == "auto" and not explicit)) and (
                (int8 := packaged_int8(packaged["tflite-int8"], card)) is not None):
            self.runtime = int8
        elif runtime == "auto":
            self.runtime = (TensorFlowRuntime(model, card, precision) if explicit
                            else choose_runtime(model, card, precision))
        elif runtime == "tensorflow" or not runtime_available(runtime):
            if runtime not in RUNTIMES:
                raise ValueError(f"unknown runtime {runtime!r} ({', '.join(RUNTIMES)}, auto)")
            self.runtime = TensorFlowRuntime(model, card, precision)
        else:
            self.runtime = make_runtime(runtime, model, card, precision, calibration=calibration)
        self.precision = self.runtime.precision
        s = self.spec.input_size
        if warm_up:
            self.run_raw(np.full((1, s, s, 3), 128, np.uint8))

    @property
    def model(self) -> keras.Model:
        """The Keras model that computes the heatmaps (at bfloat16 in TensorFlow, its bfloat16 clone); what
        saving and the app's model handling use, whichever runtime runs it."""
        return self.runtime.model if isinstance(self.runtime, TensorFlowRuntime) else self._keras

    @property
    def runtime_description(self) -> str:
        """Which runtime computes the heatmaps, in words for the model panel and `cpm infer`: a user comparing
        speeds or numbers needs to know it is the packed int8 graph and how it was checked."""
        names = {"tensorflow": "TensorFlow", "tflite": "TFLite", "tflite-int8": "TFLite (XNNPACK)",
                 "onnxruntime": "ONNX Runtime"}
        text = f"{names.get(self.runtime.name, self.runtime.name)} {self.precision}"
        check = ((self.card.packaged_runtimes or {}).get("tflite-int8") or {}).get("check") or {}
        if self.runtime.name == "tflite-int8" and check:
            text += (f", packed with the model and checked by `cpm quantise`: PCK@0.2 {check.get('pck@0.2_int8')} "
                     f"against float32's {check.get('pck@0.2_float32')} on {check.get('dataset')}")
        return text

    @classmethod
    def from_path(cls, path: str | Path, **kwargs) -> PoseEstimator:
        """The model at `path`, with the runtime files packed in its folder (`cpm_core.packaged_runtimes`)."""
        from cpm_core.weights import load_model

        model, card = load_model(path)
        if card.packaged_runtimes and "packaged" not in kwargs:
            kwargs["packaged"] = packaged_files(path, card)
        return cls(model, card, **kwargs)

    @classmethod
    def default(cls, kind: str = "hand", **kwargs) -> PoseEstimator:
        from cpm_core.weights import default_model_path

        return cls.from_path(default_model_path(kind), **kwargs)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.card.skeleton.joints

    def transform_for(self, frame: np.ndarray, crop: CropBox | None) -> CropTransform:
        h, w = frame.shape[:2]
        return CropTransform(crop or CropBox.letterbox(w, h), self.spec.input_size)

    def run_raw(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR crops -> (N, stages, h, w, C) heatmaps, through the chosen runtime."""
        return self.runtime.run(np.ascontiguousarray(images, dtype=np.uint8))

    def _result(self, heatmaps: np.ndarray, transform: CropTransform, timings: dict) -> PoseResult:
        t = time.perf_counter()
        grid = decode_predictions(heatmaps[-1], self.spec.num_joints, self.card.blur_sigma)
        xy_in = grid_to_input(grid[:, :2], self.spec.stride)
        xy = transform.to_frame(xy_in)
        kp = np.concatenate([xy, grid[:, 2:3]], axis=1).astype(np.float32)
        timings["decode"] = (time.perf_counter() - t) * 1e3
        sigma = self.card.blur_sigma or DEFAULT_SIGMA  # DARK models decode with their targets' sigma
        return PoseResult(kp, heatmaps, transform, timings, target_sigma=sigma,
                          presence_midpoint=self.card.presence_midpoint)

    def predict(self, frame: np.ndarray, crop: CropBox | None = None) -> PoseResult:
        """Pose in a BGR uint8 frame; `crop` is the square region to look at (default: whole frame)."""
        t0 = time.perf_counter()
        transform = self.transform_for(frame, crop)
        image = transform.apply(frame)
        t1 = time.perf_counter()
        heatmaps = self.run_raw(image[None])[0]
        t2 = time.perf_counter()
        return self._result(heatmaps, transform, {"preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3})

    def predict_batch(self, frames: list[np.ndarray], crops: list[CropBox | None] | None = None,
                      batch_size: int = 8) -> list[PoseResult]:
        """Several frames (or several crops of one frame) through the batched path."""
        crops = crops if crops is not None else [None] * len(frames)
        if len(crops) != len(frames):
            raise ValueError(f"{len(frames)} frames but {len(crops)} crops")
        out: list[PoseResult] = []
        for i in range(0, len(frames), batch_size):
            t0 = time.perf_counter()
            transforms = [self.transform_for(f, c) for f, c in zip(frames[i:i + batch_size],
                                                                   crops[i:i + batch_size])]
            images = np.stack([tr.apply(f) for tr, f in zip(transforms, frames[i:i + batch_size])])
            t1 = time.perf_counter()
            heatmaps = self.run_raw(images)
            t2 = time.perf_counter()
            n = len(images)
            for tr, hm in zip(transforms, heatmaps):
                out.append(self._result(hm, tr, {"preprocess": (t1 - t0) * 1e3 / n, "model": (t2 - t1) * 1e3 / n}))
        return out


def packaged_files(path: str | Path, card: ModelCard) -> dict[str, bytes]:
    """The checked runtime files packed in the model folder at `path` (a folder or a file in it) whose hashes
    still match (`cpm_core.packaged_runtimes.read_packaged`); {} for a card without any."""
    from cpm_core.packaged_runtimes import read_packaged
    from cpm_core.weights.own_format import WEIGHTS_FILE

    if not card.packaged_runtimes:
        return {}
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    return read_packaged(folder, card, WEIGHTS_FILE)
