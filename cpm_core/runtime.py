"""Thread budgets for a pipelined process (the desktop app): the model gets all cores but one, OpenCV one.

TensorFlow and OpenCV each default to one worker thread per core. In a pipeline (a capture thread decoding, a
model thread, a post-processing thread, the GUI painting) every one of them then splits its work over every
core, and each split waits for its slowest part, which another thread has just pre-empted. Measured on a
2-core machine with the default hand model (bench/pipeline.py): the model took 8.3 ms a frame with two
TensorFlow threads and 5.9 ms with one, and cropping 2.0 ms with OpenCV's two threads against 0.7 ms with one;
the GUI pipeline reached 70% of the bare model's rate with the defaults and about 80% with these budgets
(its bare rate rising too). The freed core runs decoding, post-processing and painting alongside the model.

TensorFlow fixes its thread pools when it first runs an op, so `configure_pipeline_threads` must be called
before any model is built; later it changes OpenCV only and says so.
"""

from __future__ import annotations

import os


def pipeline_thread_budget(cores: int | None = None) -> dict[str, int]:
    """Threads for a pipelined process on `cores` cores (default: the cores this process may use)."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = max(1, int(cores))
    model = max(1, cores - 1)
    return {"cores": cores, "tf_intra_op": model, "tf_inter_op": 1 if cores <= 4 else 2,
            "opencv": 1 if cores <= 4 else max(1, cores // 4)}


def configure_pipeline_threads(cores: int | None = None) -> dict[str, int | bool]:
    """Apply `pipeline_thread_budget`. Environment variables a user set (TF_NUM_INTRAOP_THREADS,
    TF_NUM_INTEROP_THREADS, CPM_OPENCV_THREADS) win. Returns the budget and whether TensorFlow took it."""
    import cv2

    budget: dict[str, int | bool] = dict(pipeline_thread_budget(cores))
    cv_threads = int(os.environ.get("CPM_OPENCV_THREADS", budget["opencv"]))
    cv2.setNumThreads(cv_threads)
    budget["opencv"] = cv_threads
    intra = int(os.environ.get("TF_NUM_INTRAOP_THREADS", budget["tf_intra_op"]))
    inter = int(os.environ.get("TF_NUM_INTEROP_THREADS", budget["tf_inter_op"]))
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
        budget["tf_applied"] = True
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools stay as they are
        budget["tf_applied"] = (tf.config.threading.get_intra_op_parallelism_threads() == intra
                                and tf.config.threading.get_inter_op_parallelism_threads() == inter)
    budget["tf_intra_op"], budget["tf_inter_op"] = intra, inter
    return budget
