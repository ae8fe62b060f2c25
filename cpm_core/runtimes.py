"""Inference runtimes for a CPM: one small adaptor per runtime, all with `run(uint8 BGR batch) -> heatmaps`.

Every adaptor takes (N, S, S, 3) uint8 BGR crops (normalised inside, channel order from the model card) and
returns float32 heatmaps of every stage, (N, stages, h, w, joints + 1), exactly what `PoseEstimator` and the
exports in `training/export.py` deal in, so a runtime can be swapped without touching cropping or decoding.

- `tensorflow`: the Keras model in one traced `tf.function` per input signature (oneDNN), float32 or
  bfloat16 (AMX). The reference every other runtime is checked against.
- `tflite`: the same graph converted to TFLite and run by LiteRT's interpreter with XNNPACK (the
  `ai-edge-litert` package, else TensorFlow's own deprecated `tf.lite.Interpreter`). `tflite-int8`: post-training
  int8 quantisation with a calibration set of real crops (`training/export.py` makes one from a dataset).
- `onnxruntime`: converted with `tf2onnx` (which handles our Keras 3 / TF 2.21 graphs, opset 17) and run by
  ONNX Runtime's CPU provider.

`choose_runtime` is the rule `PoseEstimator(runtime="auto")` follows; `bench/runtimes.py` measures the table
it rests on. Measured there (2-core AMX Xeon shared with a training run, load 5-8, one model thread as the app
gives a fast model on 2 cores; speed-up over TensorFlow float32 in the same run, model-only at batch 1):

| model | TF bfloat16 | TFLite fp32 | TFLite int8 | ONNX Runtime fp32 |
|---|---|---|---|---|
| hand_default (hand-rt-128x3, plain 3x3/7x7 convolutions) | 3.55x | 0.68x | 3.96x | 0.96x |
| hand-rt-128x3 / body-rt-192x3 (untrained) | 3.55x / 2.61x | 0.69x / 0.72x | 3.92x / 2.74x | 0.89x / 0.92x |
| hand-lite-128x3 / body-lite-192x3 (depthwise) | 1.18x / 1.14x | 0.32x / 0.15x | 0.05x / 0.03x | 2.57x / 1.21x |

So: plain convolutions stay on TensorFlow (oneDNN is as fast as any float32 runtime there, and its bfloat16 on
AMX far faster); models with depthwise convolutions go to ONNX Runtime (oneDNN's depthwise kernels are slow,
even in bfloat16; XNNPACK was slower still on those graphs). TFLite never won at float32 and is no fallback.
int8 won for the plain models (within 1 PCK point on hand_more/val for the hand model: +0.08 pt on 58 subjects,
-0.54 pt on 114) but needs a calibration set the estimator does not have at load time, and PCK must be checked
per model. So it is made and checked once, when the model is made: `cpm quantise` packs a checked int8 graph into
the model folder (`cpm_core.packaged_runtimes`), and `PoseEstimator.from_path` runs it by default
(`packaged_int8`); the embedded default models carry one. Without a packed graph int8 stays explicit
(`cpm export --format tflite --int8`, or `runtime="tflite-int8"` with crops).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

RUNTIMES = ("tensorflow", "tflite", "tflite-int8", "onnxruntime")
# Max |heatmap difference| from TensorFlow float32 for a float32 runtime to count as the same model: the
# exports' float32 tolerance (training/export.py); measured differences are ~1e-6.
FLOAT32_TOLERANCE = 1e-4
# Which runtime `auto` tries first, by the kind of convolutions a model has (see the table above); a runtime
# whose package is missing, whose conversion fails or whose heatmaps differ is skipped.
AUTO_ORDER = {"plain": ("tensorflow",), "depthwise": ("onnxruntime", "tensorflow")}


class Runtime(Protocol):
    """What `PoseEstimator` needs from a runtime."""

    name: str
    precision: str

    def run(self, images: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 BGR -> (N, stages, h, w, C) float32 heatmaps."""
        ...


def default_threads() -> int:
    """The thread count other runtimes get: TensorFlow's intra-op budget when one was set (the app sets it before
    any model is built, `cpm_core/runtime.py`), else every usable core, as TensorFlow would take."""
    import tensorflow as tf

    n = tf.config.threading.get_intra_op_parallelism_threads()
    if n > 0:
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def serving_module(model, card):
    """A tf.Module whose `serve` takes uint8 BGR crops (batch free) and returns {"heatmaps": float32}: the graph
    every conversion (SavedModel, TFLite, ONNX) starts from, so they all normalise the same way."""
    import tensorflow as tf

    s = card.spec.input_size
    norm = card.normalisation
    scale, offset, rgb = float(norm.scale), float(norm.offset), norm.channels == "RGB"

    class CpmModule(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="cpm")
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, s, s, 3], tf.uint8, name="images")])
        def serve(self, images):
            x = tf.cast(images, tf.float32)
            if rgb:
                x = x[..., ::-1]
            return {"heatmaps": tf.cast(self.model(x * scale + offset, training=False), tf.float32)}

    return CpmModule()


def tflite_bytes(model, card, quantise: str = "float32", calibration: Iterable[np.ndarray] | None = None) -> bytes:
    """The model as a TFLite flatbuffer. `quantise`: 'float32', 'float16' (weights only) or 'int8' (weights and
    activations, post-training, scaled on `calibration`: uint8 crops (S, S, 3) or batches of them; required).

    Converted from a SavedModel loaded back: with Keras 3 in TF 2.21 both converting the Keras model's own
    concrete functions and `from_saved_model(path)` drop the weights (READ_VARIABLE ops without values)."""
    import tensorflow as tf

    if quantise not in ("float32", "float16", "int8"):
        raise ValueError(f"quantise must be float32, float16 or int8, got {quantise!r}")
    if quantise == "int8" and calibration is None:
        raise ValueError("int8 quantisation needs calibration crops")
    with tempfile.TemporaryDirectory(prefix="cpm-tflite-") as tmp:
        module = serving_module(model, card)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        loaded = tf.saved_model.load(tmp)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["serving_default"]], loaded)
        if quantise == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantise == "int8":
            crops = [np.asarray(c, np.uint8) for c in calibration]

            def representative():
                for c in crops:
                    yield [c[None] if c.ndim == 3 else c]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return converter.convert()


def onnx_bytes(model, card, opset: int = 17) -> bytes:
    """The model as an ONNX graph (tf2onnx from the serving function; raises ImportError without tf2onnx)."""
    import tensorflow as tf
    import tf2onnx

    module = serving_module(model, card)
    s = card.spec.input_size
    proto, _ = tf2onnx.convert.from_function(
        module.serve, input_signature=(tf.TensorSpec([None, s, s, 3], tf.uint8, name="images"),), opset=opset)
    return proto.SerializeToString()


class TensorFlowRuntime:
    """The Keras model in a traced tf.function (oneDNN), float32 or bfloat16; the reference runtime."""

    name = "tensorflow"

    def __init__(self, model, card, precision: str = "float32"):
        import tensorflow as tf

        from cpm_core.network import with_precision

        self.precision = precision
        self.model = with_precision(model, card.spec, precision)
        s = card.spec.input_size
        norm = card.normalisation
        scale, offset, rgb = np.float32(norm.scale), np.float32(norm.offset), norm.channels == "RGB"

        def forward(images: tf.Tensor) -> tf.Tensor:
            x = tf.cast(images, tf.float32)
            if rgb:
                x = x[..., ::-1]
            return tf.cast(self.model(x * scale + offset, training=False), tf.float32)

        self._single = tf.function(forward, input_signature=[tf.TensorSpec([1, s, s, 3], tf.uint8)],
                                   reduce_retracing=True)
        self._batched = tf.function(forward, input_signature=[tf.TensorSpec([None, s, s, 3], tf.uint8)])
        self._graphs: dict[bool, Callable] = {}

    def graph(self, single: bool) -> Callable:
        """The traced graph for one image or a batch, traced on first use. Calling it directly skips
        tf.function's dispatch: about 0.4 ms less interpreter time a call, time the app's other threads would
        otherwise wait for (bench/pipeline.py)."""
        graph = self._graphs.get(single)
        if graph is None:
            graph = self._graphs[single] = (self._single if single else self._batched).get_concrete_function()
        return graph

    def run(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        images = np.ascontiguousarray(images, dtype=np.uint8)
        return self.graph(len(images) == 1)(tf.constant(images)).numpy()


def tflite_interpreter(source: str | Path | bytes, threads: int):
    """A TFLite interpreter for a file or a flatbuffer in memory: LiteRT's (XNNPACK by default) from
    `ai-edge-litert`, else TensorFlow's deprecated copy. The one place that picks the interpreter, for the
    runtimes here and the detectors' own models (`cpm_core.detection.ssd`)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    where = {"model_content": source} if isinstance(source, bytes) else {"model_path": str(source)}
    with warnings.catch_warnings():  # TF's interpreter warns on every construction that it is deprecated
        warnings.simplefilter("ignore")
        return Interpreter(**where, num_threads=threads)


class TFLiteRuntime:
    """A TFLite flatbuffer on LiteRT's interpreter with XNNPACK; the batch size is resized on change."""

    name = "tflite"

    def __init__(self, content: bytes, precision: str = "float32", threads: int | None = None):
        self.precision = precision
        if precision == "int8":
            self.name = "tflite-int8"
        self._interp = tflite_interpreter(content, threads or default_threads())
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._batch = 0

    def run(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.uint8)
        if len(images) != self._batch:
            self._interp.resize_tensor_input(self._in, list(images.shape))
            self._interp.allocate_tensors()
            self._batch = len(images)
        self._interp.set_tensor(self._in, images)
        self._interp.invoke()
        return self._interp.get_tensor(self._out)


class OnnxRuntime:
    """An ONNX graph on ONNX Runtime's CPU provider (all graph optimisations, `threads` intra-op threads)."""

    name = "onnxruntime"

    def __init__(self, content: bytes, precision: str = "float32", threads: int | None = None):
        import onnxruntime as ort

        self.precision = precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No spin-waiting between operators: on a machine shared with the app's capture, post-processing and
        # painting threads (or another process) spinning workers took the cores those threads needed.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, images: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(images, dtype=np.uint8)})[0]


def packaged_int8(content: bytes, card, threads: int | None = None) -> TFLiteRuntime | None:
    """A packaged int8 graph (`cpm_core.packaged_runtimes`) as a runtime, or None with one warning if it cannot
    serve this card: no interpreter here, a flatbuffer the interpreter refuses, or heatmaps of the wrong shape
    or not finite on a test crop. Its accuracy was checked when it was made; here only that it runs."""
    if not runtime_available("tflite-int8"):
        return None
    s, st = card.spec.input_size, card.spec.stride
    want = (1, card.spec.stages, s // st, s // st, card.spec.num_joints + 1)
    try:
        runtime = TFLiteRuntime(content, "int8", threads)
        out = runtime.run(parity_crops(card))
    except Exception as exc:  # noqa: BLE001 - any refusal by the interpreter means: run the float model
        warnings.warn(f"packaged int8 graph unusable ({exc.__class__.__name__}: {str(exc)[:200]}); running the "
                      "float model", RuntimeWarning, stacklevel=3)
        return None
    if tuple(out.shape) != want or not np.isfinite(out).all():
        warnings.warn(f"packaged int8 graph gives heatmaps of shape {tuple(out.shape)} (expected {want}) or "
                      "non-finite values; running the float model", RuntimeWarning, stacklevel=3)
        return None
    return runtime


def runtime_available(name: str) -> bool:
    """Whether the packages a runtime needs import here (TensorFlow always does)."""
    try:
        if name in ("tflite", "tflite-int8"):
            try:
                import ai_edge_litert.interpreter  # noqa: F401
            except ImportError:
                import tensorflow as tf

                return hasattr(tf, "lite") and hasattr(tf.lite, "Interpreter")
        elif name == "onnxruntime":
            import onnxruntime  # noqa: F401
            import tf2onnx  # noqa: F401
        elif name != "tensorflow":
            return False
    except ImportError:
        return False
    return True


def _cache_dir() -> Path | None:
    """Where converted graphs are kept between runs (CPM_RUNTIME_CACHE, else the user's cache folder; '' or
    'off' turns caching off): converting takes 1-3 s, a second start of the app need not pay it again."""
    env = os.environ.get("CPM_RUNTIME_CACHE")
    if env is not None:
        return None if env in ("", "off", "0") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cpm_studio" / "runtimes"


def _model_key(model, card, what: str) -> str:
    """A hash of everything a converted graph depends on: weights, spec, normalisation, target and versions."""
    import tensorflow as tf

    h = hashlib.sha256()
    h.update(f"{what}|{tf.__version__}|{card.spec}|{card.normalisation}".encode())
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:32]


def cached_conversion(model, card, what: str, convert: Callable[[], bytes]) -> bytes:
    """`convert()`'s bytes, read from / written to the conversion cache when there is one (atomically)."""
    folder = _cache_dir()
    if folder is None:
        return convert()
    path = folder / f"{_model_key(model, card, what)}.{what}"
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = convert()
    try:
        from cpm_core.atomic_io import atomic_write_bytes

        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError:
        pass  # a read-only home is no reason to fail: the next start converts again
    return data


def make_runtime(name: str, model, card, precision: str = "float32", threads: int | None = None,
                 calibration: Iterable[np.ndarray] | None = None) -> Runtime:
    """Build runtime `name` for a float32 Keras CPM. Raises ImportError when its packages are missing."""
    if name == "tensorflow":
        return TensorFlowRuntime(model, card, precision)
    if name == "tflite":
        if not runtime_available(name):
            raise ImportError("no TFLite interpreter (pip install ai-edge-litert)")
        return TFLiteRuntime(cached_conversion(model, card, "tflite", lambda: tflite_bytes(model, card)),
                             "float32", threads)
    if name == "tflite-int8":
        if not runtime_available(name):
            raise ImportError("no TFLite interpreter (pip install ai-edge-litert)")
        return TFLiteRuntime(tflite_bytes(model, card, "int8", calibration), "int8", threads)
    if name == "onnxruntime":
        if not runtime_available(name):
            raise ImportError("ONNX Runtime needs the onnxruntime and tf2onnx packages")
        return OnnxRuntime(cached_conversion(model, card, "onnx", lambda: onnx_bytes(model, card)), "float32",
                           threads)
    raise ValueError(f"unknown runtime {name!r} ({', '.join(RUNTIMES)})")


def parity_crops(card, n: int = 1, seed: int = 0) -> np.ndarray:
    """Seeded random uint8 crops for parity checks: every pixel value occurs, unlike a flat grey frame."""
    s = card.spec.input_size
    return np.random.default_rng(seed).integers(0, 256, (n, s, s, 3), dtype=np.uint8)


def has_depthwise(model) -> bool:
    """Whether a Keras model (nested ones included) has depthwise or separable convolutions."""
    import keras

    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
            return True
        stack.extend(getattr(layer, "layers", []))
    return False


def choose_runtime(model, card, precision: str, order: Iterable[str] | None = None,
                   threads: int | None = None) -> Runtime:
    """The rule behind `runtime="auto"` (measurements in the module docstring): `order` defaults to
    `AUTO_ORDER` by whether the model has depthwise convolutions. The first runtime in it whose packages
    import, whose conversion works and whose heatmaps on a random crop lie within `FLOAT32_TOLERANCE` of
    TensorFlow float32's is used; TensorFlow runs at `precision` (bfloat16 on AMX CPUs), the others at float32.
    Anything that fails falls back to TensorFlow: a missing package silently, a failed conversion or parity
    check with a warning."""
    if order is None:
        order = AUTO_ORDER["depthwise" if has_depthwise(model) else "plain"]
    reference = None
    for name in order:
        if name == "tensorflow":
            break
        if reference is None:
            reference = TensorFlowRuntime(model, card, "float32")
        if not runtime_available(name):
            continue
        try:
            candidate = make_runtime(name, model, card, "float32", threads)
            x = parity_crops(card)
            diff = float(np.abs(candidate.run(x) - reference.run(x)).max())
        except ImportError:
            continue
        except Exception as exc:  # a converter that cannot handle some layer: TensorFlow still can
            warnings.warn(f"runtime {name} unusable for {card.spec.name} ({exc.__class__.__name__}: {exc}); "
                          "trying the next", RuntimeWarning, stacklevel=2)
            continue
        if diff <= FLOAT32_TOLERANCE:
            return candidate
        warnings.warn(f"runtime {name} differs from TensorFlow by {diff:.3g} on {card.spec.name}; not used",
                      RuntimeWarning, stacklevel=2)
    if reference is not None and reference.precision == precision:
        return reference
    return TensorFlowRuntime(model, card, precision)
