"""Dockable panels that run training, distillation and evaluation as separate processes (QProcess).

The GUI process never imports the TensorFlow code paths of `training`: it starts `python -m training.cli ...`
and reads the JSON-lines protocol (docs/protocol.md) from its stdout, so a crashing or busy run never freezes
or takes down the app.
"""

from app.panels.distill_panel import DistillPanel
from app.panels.evaluate_panel import EvaluatePanel
from app.panels.live_view import TrainingLiveView
from app.panels.train_panel import TrainPanel
from app.panels.training_process import TrainingProcess

__all__ = ["DistillPanel", "EvaluatePanel", "TrainPanel", "TrainingLiveView", "TrainingProcess"]
