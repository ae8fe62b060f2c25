"""Distillation teachers: a CPM (any weights format `load_model` reads) or a TFLite keypoint model.

Both answer the same two questions that `cpm distill` asks of a teacher: where are the joints in these crops
(for the teacher's validation PCK and for offline labels), and how many frames per second does it run at.
A CPM teacher additionally gives per-stage heatmaps inside the training graph (online distillation).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from cpm_core.heatmaps import decode_predictions, grid_to_input
from cpm_core.model_card import ModelCard
from cpm_core.runtimes import tflite_interpreter


def frames_per_second(call: Callable[[], object], seconds: float = 1.0, min_calls: int = 5) -> float:
    """Calls per second of `call` (one frame each), after one warm-up call; at least `min_calls` timed."""
    call()
    n, t0 = 0, time.perf_counter()
    while n < min_calls or time.perf_counter() - t0 < seconds:
        call()
        n += 1
    return n / (time.perf_counter() - t0)


def default_stage_map(student_stages: int, teacher_stages: int) -> list[int]:
    """Evenly spaced teacher stages (1-based) ending at the teacher's last: 3 students of 6 -> [2, 4, 6]."""
    return [max(1, round(s * teacher_stages / student_stages)) for s in range(1, student_stages + 1)]


def check_stage_map(stage_map: list[int], student_stages: int, teacher_stages: int) -> list[int]:
    if not stage_map:
        return default_stage_map(student_stages, teacher_stages)
    stage_map = [int(s) for s in stage_map]
    if len(stage_map) != student_stages:
        raise ValueError(f"distill.stage_map has {len(stage_map)} entries but the student has {student_stages} "
                         "stages (one teacher stage per student stage)")
    bad = [s for s in stage_map if not 1 <= s <= teacher_stages]
    if bad:
        raise ValueError(f"distill.stage_map: teacher stages {bad} out of range 1..{teacher_stages}")
    return stage_map


class CpmTeacher:
    """A trained CPM whose stage heatmaps the student learns from."""

    kind = "cpm"

    def __init__(self, path: str | Path):
        from cpm_core.weights import load_model

        self.path = str(path)
        self.model, self.card = load_model(path)
        self.card: ModelCard
        self.spec = self.card.spec
        self.input_size = self.spec.input_size
        self._forward = tf.function(lambda x: tf.cast(self.model(x, training=False), tf.float32))

    def normalise(self, bgr_pixels: tf.Tensor) -> tf.Tensor:
        """BGR pixel values in [0, 255] (float) -> the teacher's input, as its card says."""
        norm = self.card.normalisation
        x = bgr_pixels[..., ::-1] if norm.channels == "RGB" else bgr_pixels
        return x * norm.scale + norm.offset

    def stage_heatmaps(self, student_images: tf.Tensor, stage_map: list[int], grid: int) -> tf.Tensor:
        """Teacher heatmaps for student inputs (normalised x / 256 - 0.5, BGR, the pipeline's convention):
        the crop is resized to the teacher's input, and each mapped stage's heatmaps to the student's grid.
        Returns (B, len(stage_map), grid, grid, C), without gradient."""
        pixels = (tf.cast(student_images, tf.float32) + 0.5) * 256.0
        x = self.normalise(tf.image.resize(pixels, [self.input_size, self.input_size], method="bilinear"))
        hm = self.model(x, training=False)
        hm = tf.gather(tf.cast(hm, tf.float32), [s - 1 for s in stage_map], axis=1)
        b, t = tf.shape(hm)[0], len(stage_map)
        h, w, c = hm.shape[2], hm.shape[3], hm.shape[4]
        flat = tf.image.resize(tf.reshape(hm, [-1, h, w, c]), [grid, grid], method="bilinear")
        return tf.stop_gradient(tf.reshape(flat, [b, t, grid, grid, c]))

    def keypoints(self, images: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 BGR crops at the teacher's input size -> joints (N, J, 2) in crop pixels and a
        presence score (N,) (mean peak confidence)."""
        out, conf = [], []
        for i in range(0, len(images), batch):
            x = self.normalise(tf.constant(images[i:i + batch], tf.float32))
            grid = decode_predictions(self._forward(x).numpy()[:, -1], self.spec.num_joints, self.card.blur_sigma)
            out.append(grid_to_input(grid[..., :2], self.spec.stride))
            conf.append(grid[..., 2].mean(axis=-1))
        return np.concatenate(out).astype(np.float32), np.concatenate(conf)

    def fps(self) -> float:
        x = tf.constant(np.zeros((1, self.input_size, self.input_size, 3), np.float32))
        return frames_per_second(lambda: self._forward(x).numpy())


TFLITE_IDENTIFIER = b"TFL3"
PROBE_TIMEOUT_S = 600
# Loads the model, allocates and runs it once on zeros, in a child process: the TFLite runtime trusts the file's
# offsets, so a truncated model segfaults it, and that must end the probe, not `cpm distill` or the app.
_TFLITE_PROBE = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from cpm_core.runtimes import tflite_interpreter
try:
    it = tflite_interpreter(sys.argv[1], 1)  # the interpreter the teacher will really run on
    it.allocate_tensors()
    for d in it.get_input_details():
        it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
except Exception as exc:
    print(f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
    sys.exit(3)
"""


def check_tflite_file(path: str | Path) -> None:
    """Raise a one-line ValueError naming `path` unless it is a TFLite model the runtime can load and run.

    Why: `tf.lite.Interpreter` segfaults on a truncated model and reports a random file with an error that names
    no file (or a UnicodeDecodeError). The flatbuffer header is checked here, then the model is loaded and run
    once in a child process, so a crash there becomes this error instead of killing the caller.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the teacher model ({exc.strerror or exc})") from None
    if size < 8 or head[4:8] != TFLITE_IDENTIFIER:
        raise ValueError(f"{path}: not a TFLite model (no {TFLITE_IDENTIFIER.decode()} flatbuffer identifier at "
                         "byte 4)")
    if int.from_bytes(head[:4], "little") >= size:
        raise ValueError(f"{path}: truncated TFLite model (its root table lies beyond the file's {size} bytes)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    try:
        proc = subprocess.run([sys.executable, "-c", _TFLITE_PROBE, str(p)], capture_output=True, text=True,
                              env=env, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ValueError(f"{path}: the TFLite runtime did not finish loading this model in {PROBE_TIMEOUT_S} s") \
            from None
    if proc.returncode == 0:
        return
    if proc.returncode < 0:
        raise ValueError(f"{path}: the TFLite runtime crashed reading this model (signal {-proc.returncode}): a "
                         "truncated or corrupt .tflite file?")
    detail = (proc.stdout.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    raise ValueError(f"{path}: not a usable TFLite model ({detail[:300]})")


class KeypointTeacher:
    """A TFLite landmark model (e.g. MediaPipe's hand_landmark_*.tflite): square RGB [0, 1] crop in, joints
    in input pixels and a presence score out. Runs on LiteRT (`cpm_core.runtimes.tflite_interpreter`) on 2
    threads, one frame a call."""

    kind = "keypoints"

    def __init__(self, path: str | Path, num_threads: int = 2):
        self.path = str(path)
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such teacher model")
        check_tflite_file(path)  # a broken file must not crash this process (see check_tflite_file)
        try:
            self.interpreter = tflite_interpreter(path, num_threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{path}: not a usable TFLite model ({exc})") from None
        inp = self.interpreter.get_input_details()[0]
        shape = [int(v) for v in inp["shape"]]
        if len(shape) != 4 or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(f"{path}: expected a square RGB image input, got shape {shape}")
        self._input = inp["index"]
        self.input_size = shape[1]
        outs = {o["name"]: o for o in self.interpreter.get_output_details()}
        by_size = sorted(outs.values(), key=lambda o: o["index"])
        coords = outs.get("Identity") or next(o for o in by_size if int(np.prod(o["shape"])) % 3 == 0
                                              and int(np.prod(o["shape"])) > 3)
        presence = outs.get("Identity_1") or next(o for o in by_size if int(np.prod(o["shape"])) == 1)
        self._coords, self._presence = coords["index"], presence["index"]
        self.num_joints = int(np.prod(coords["shape"])) // 3

    def _run(self, rgb01: np.ndarray) -> tuple[np.ndarray, float]:
        self.interpreter.set_tensor(self._input, rgb01[None])
        self.interpreter.invoke()
        xyz = self.interpreter.get_tensor(self._coords).reshape(-1, 3)
        p = float(self.interpreter.get_tensor(self._presence).reshape(-1)[0])
        if not 0.0 <= p <= 1.0:  # a logit rather than a probability
            p = float(1.0 / (1.0 + np.exp(-p)))
        return xyz[:, :2].astype(np.float32), p

    def keypoints(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S, 3) uint8 BGR crops (any S; resized to the model's input) -> joints (N, J, 2) in crop
        pixels and presence scores (N,)."""
        kps, pres = [], []
        for img in images:
            s = img.shape[0]
            x = img if s == self.input_size else cv2.resize(
                img, (self.input_size, self.input_size),
                interpolation=cv2.INTER_AREA if s > self.input_size else cv2.INTER_LINEAR)
            xy, p = self._run(np.ascontiguousarray(x[..., ::-1], dtype=np.float32) / 255.0)
            kps.append((xy + 0.5) * (s / self.input_size) - 0.5)
            pres.append(p)
        return np.stack(kps).astype(np.float32), np.asarray(pres, np.float32)

    def fps(self) -> float:
        x = np.zeros((self.input_size, self.input_size, 3), np.float32)
        return frames_per_second(lambda: self._run(x))


def load_teacher(path: str | Path) -> CpmTeacher | KeypointTeacher:
    """A .tflite file is a keypoint teacher; anything else must be a CPM that `load_model` reads."""
    return KeypointTeacher(path) if str(path).lower().endswith(".tflite") else CpmTeacher(path)
