"""One way to start the project's own command-line programs (`cpm train`, `cpm infer`, ...) as child processes.

Why: the Train/Distill/Evaluate panels and Analyse videos each built the same QProcess (the project on
PYTHONPATH, unbuffered output so JSON lines arrive as they are written, TensorFlow's start-up lines quiet, the
project as working directory); one function keeps them alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_process(parent: QObject | None = None) -> QProcess:
    """A QProcess set up to run the project's Python programs; the caller connects its signals and starts it."""
    proc = QProcess(parent)
    env = QProcessEnvironment.systemEnvironment()
    env.insert("PYTHONPATH", os.pathsep.join(p for p in (str(PROJECT_ROOT), env.value("PYTHONPATH")) if p))
    env.insert("PYTHONUNBUFFERED", "1")
    env.insert("TF_CPP_MIN_LOG_LEVEL", env.value("TF_CPP_MIN_LOG_LEVEL") or "2")
    proc.setProcessEnvironment(env)
    proc.setWorkingDirectory(str(PROJECT_ROOT))
    return proc
