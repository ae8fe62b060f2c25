"""One description of the machine a benchmark ran on, printed at the top of every bench table."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """CPU model, cores, load average at start, TensorFlow / OpenCV versions and GPUs, in one line."""
    cpu = cpu_name()
    import cv2
    import tensorflow as tf

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    gpus = tf.config.list_physical_devices("GPU")
    return (f"{cpu}, {os.cpu_count()} cores, load {load:.1f} at start, {platform.system()} {platform.release()}, "
            f"TF {tf.__version__}, OpenCV {cv2.__version__}, {f'{len(gpus)} GPU(s)' if gpus else 'CPU only'}")
