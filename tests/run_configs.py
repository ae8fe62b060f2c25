"""The tiny training run the training, distillation and evaluation tests share: a 64-pixel, 2-stage,
eighth-width CPM on the 3-image fixture, written as a real TOML run configuration."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_COCO = ROOT / "tests" / "fixtures" / "dataset" / "tiny_coco" / "tiny.json"

TRAIN_DEFAULTS = {"batch": 4, "lr": 0.003, "log_every": 2, "eval_every": 10, "checkpoint_every": 10,
                  "precision": "float32"}


def write_tiny_config(path: Path, steps: int, train: dict | None = None, **sections: dict) -> Path:
    """Write the run config to `path` (output folder "out" beside it); `train` overrides [train] settings,
    `sections` adds whole tables such as distill={...} or augment={...}."""
    def table(values: dict) -> str:
        return "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items())

    text = f"""output = "out"
[data]
train = ["{TINY_COCO}"]
val = ["{TINY_COCO}"]
margin = 1.5
[model]
preset = "hand-rt-128x3"
spec = {{ input_size = 64, stages = 2, width = 0.125 }}
[train]
{table({**TRAIN_DEFAULTS, "steps": steps, **(train or {})})}
"""
    for name, values in sections.items():
        text += f"[{name}]\n{table(values)}\n"
    path.write_text(text)
    return path
