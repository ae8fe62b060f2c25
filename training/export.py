"""`cpm export MODEL OUT --format savedmodel|tflite|own [--float16]`: a trained CPM for other runtimes.

Exported graphs take **uint8 BGR pixels** (N, S, S, 3), S = the card's input size, the crops exactly as OpenCV
reads them, and normalise inside (x * scale + offset, channel order from the model card), so a consumer never
has to know the normalisation. Output: float32 heatmaps of every stage, (N, stages, h, w, joints + 1).

- savedmodel: `tf.saved_model.save` of a tf.Module whose `serve` (also the `serving_default` signature) is a
  tf.function with that fixed input signature (batch dimension free). The model card is copied to
  `OUT/card.json`.
- tflite: converted FROM the exported SavedModel: it is loaded back with `tf.saved_model.load` and its
  serving signature converted (`TFLiteConverter.from_concrete_functions` with the loaded object as trackable).
  Both shortcuts drop the weights with Keras 3 in TF 2.21: converting the Keras model's own concrete functions,
  and `from_saved_model(path)`, which keeps the variables as READ_VARIABLE ops without values (NaN output).
  `--float16` stores the weights as float16 (half the file, heatmaps within ~1e-2).
  The card is written beside it as `OUT.card.json`.
- own: CPM Studio's model folder (weights + card), e.g. to turn a port .pkl into our format.

After every export the result is loaded back and run on random crops against the Keras model; the maximum
absolute heatmap difference is printed (and the command fails when it exceeds the tolerance).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

FORMATS = ("savedmodel", "tflite", "own")
TOLERANCE = {"float32": 1e-4, "float16": 5e-2}


def _module(model, card):
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


def keras_heatmaps(model, card, images: np.ndarray) -> np.ndarray:
    return np.asarray(model(card.normalisation.apply(images), training=False), np.float32)


def save_savedmodel(model, card, out: Path) -> Path:
    import tensorflow as tf

    from cpm_core.atomic_io import atomic_write_text

    module = _module(model, card)
    if out.exists():
        shutil.rmtree(out)
    tf.saved_model.save(module, str(out), signatures={"serving_default": module.serve})
    atomic_write_text(out / "card.json", card.to_json())
    return out


def save_tflite(model, card, out: Path, float16: bool = False) -> Path:
    import tensorflow as tf

    from cpm_core.atomic_io import atomic_write_bytes, atomic_write_text

    with tempfile.TemporaryDirectory(prefix="cpm-export-") as tmp:
        saved = save_savedmodel(model, card, Path(tmp) / "savedmodel")
        # The SavedModel loaded back, its serving signature converted: `from_saved_model(path)` on this file
        # kept the Keras 3 variables as READ_VARIABLE ops without values (NaN heatmaps, 32 KB file).
        loaded = tf.saved_model.load(str(saved))
        converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["serving_default"]], loaded)
        if float16:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        data = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    atomic_write_text(out.with_name(out.name + ".card.json"), card.to_json())
    return out


def run_savedmodel(path: Path, images: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    return loaded.serve(tf.constant(images, tf.uint8))["heatmaps"].numpy()


def run_tflite(path: Path, images: np.ndarray) -> np.ndarray:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interp = tf.lite.Interpreter(model_path=str(path), num_threads=2)
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], list(images.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], images)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def export_model(model_path: str | Path, out: str | Path, fmt: str, float16: bool = False,
                 check_images: int = 2, seed: int = 0) -> dict:
    """Export and check; returns {"format", "path", "max_abs_diff", "tolerance", "shape"}."""
    from cpm_core.weights import load_model, save_model

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")
    if float16 and fmt != "tflite":
        raise ValueError("--float16 applies to --format tflite only")
    model, card = load_model(model_path)
    out = Path(out)
    s = card.spec.input_size
    images = np.random.default_rng(seed).integers(0, 256, (check_images, s, s, 3), dtype=np.uint8)
    want = keras_heatmaps(model, card, images)
    if fmt == "savedmodel":
        save_savedmodel(model, card, out)
        got = run_savedmodel(out, images)
    elif fmt == "tflite":
        save_tflite(model, card, out, float16)
        got = run_tflite(out, images)
    else:
        save_model(model, card, out)
        reloaded, card2 = load_model(out)
        got = keras_heatmaps(reloaded, card2, images)
    if got.shape != want.shape:
        raise ValueError(f"exported model gives heatmaps of shape {got.shape}, the Keras model {want.shape}")
    tol = TOLERANCE["float16" if float16 else "float32"]
    return {"format": fmt, "path": str(out), "max_abs_diff": float(np.abs(got - want).max()), "tolerance": tol,
            "shape": list(got.shape), "float16": float16}


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a model as SavedModel, TFLite or our own format",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="weights in any format load_model reads (model folder, .pkl, checkpoint)")
    p.add_argument("out", help="output folder (savedmodel, own) or file (tflite)")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="savedmodel")
    p.add_argument("--float16", action="store_true", help="tflite: float16 weights")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        res = export_model(args.model, args.out, args.fmt, args.float16)
    except Exception as exc:
        print(f"cpm export: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    ok = res["max_abs_diff"] <= res["tolerance"]
    if args.json:
        print(json.dumps({**res, "ok": ok}))
    else:
        print(f"exported {res['format']}{' (float16)' if res['float16'] else ''} to {res['path']}")
        print(f"parity vs Keras: max |heatmap diff| = {res['max_abs_diff']:.3g} over {tuple(res['shape'])} "
              f"(tolerance {res['tolerance']:g}): {'OK' if ok else 'FAILED'}")
    return 0 if ok else 2
