"""Shared helpers for the app tests: a tiny real model, fixture paths, and a deliberately slow estimator."""

from __future__ import annotations

import time
from pathlib import Path

from cpm_core.estimator import PoseEstimator
from cpm_core.model_card import ModelCard
from cpm_core.network import build_cpm
from cpm_core.spec import ModelSpec

MEDIA = Path(__file__).parent / "fixtures" / "media"
VIDEO = MEDIA / "hand_clip.mp4"
IMAGE = MEDIA / "hand.jpg"
FOLDER = MEDIA / "folder"

TINY = ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=8, trunk="hand", width=0.125)


def tiny_estimator(trained: bool = True) -> PoseEstimator:
    model = build_cpm(TINY)
    return PoseEstimator(model, ModelCard.for_spec(TINY, trained=trained, name="tiny test model"))


class SlowEstimator:
    """A real estimator that takes at least `delay` seconds per frame, like a big model on a small machine."""

    def __init__(self, inner: PoseEstimator, delay: float):
        self.inner = inner
        self.card = inner.card
        self.delay = delay
        self.calls = 0

    def predict(self, frame, crop=None):
        self.calls += 1
        time.sleep(self.delay)
        return self.inner.predict(frame, crop=crop)
