"""cpm_core: the Convolutional Pose Machines library behind CPM Studio (no Qt here, by design)."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) drowns the messages users need to see.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
