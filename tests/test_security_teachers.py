"""A broken `.tflite` teacher gives one clear error naming the file, never a segfault (issue #22, item 4).

A truncated copy of a real landmark model made `cpm distill` segfault inside the TFLite runtime (no `error`
event); random bytes gave an error naming no file. The cases run in a child process, so a segfault fails the test
instead of killing pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LITE_TEACHER = REPO / "tests" / "fixtures" / "teachers" / "hand_landmark_lite.tflite"

_CHILD = textwrap.dedent('''
    import sys
    from training.teachers import KeypointTeacher
    for path in sys.argv[1:]:
        try:
            teacher = KeypointTeacher(path)
            print(f"loaded {path} joints={teacher.num_joints}", flush=True)
        except ValueError as exc:
            print(f"refused {path} :: {exc}", flush=True)
''')


def test_truncated_and_random_tflite_teachers_are_refused_clearly(tmp_path: Path) -> None:
    data = LITE_TEACHER.read_bytes()
    cases = {"cut100.tflite": data[:100], "cut5000.tflite": data[:5000], "half.tflite": data[: len(data) // 2],
             "random.tflite": np.random.default_rng(4).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
             "empty.tflite": b""}
    for name, raw in cases.items():
        (tmp_path / name).write_bytes(raw)
    paths = [str(tmp_path / n) for n in cases] + [str(LITE_TEACHER)]
    proc = subprocess.run([sys.executable, "-c", _CHILD, *paths], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=1800)
    assert proc.returncode == 0, f"the process crashed (status {proc.returncode}); got so far:\n{proc.stdout}"
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(paths), proc.stdout
    for name, line in zip(cases, lines):
        assert line.startswith(f"refused {tmp_path / name} ::"), line
        message = line.split(" :: ", 1)[1]
        assert str(tmp_path / name) in message, f"the message does not name the file: {line}"
    assert lines[-1] == f"loaded {LITE_TEACHER} joints=21"
