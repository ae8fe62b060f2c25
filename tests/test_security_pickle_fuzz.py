"""No `.pkl` may crash the process or escape as a traceback (issue #22, item 2).

Bit-mutated pickles of real weights layouts go through `read_pkl` and every loaded array is read element by
element (what `assign_layer_arrays` does with it). Each run happens in a child process, so a segfault fails the
test instead of killing pytest; the child reports every exception that is not a `WeightsError`. The mutation loop
has a fixed seed, so a failure reproduces with the same case number.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

_CHILD = textwrap.dedent('''
    import json, random, sys, traceback
    from pathlib import Path
    import numpy as np
    from cpm_core.weights import WeightsError
    from cpm_core.weights.port_pkl import read_pkl

    def mutate(rng, data):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            kind = rng.randrange(6)
            i = rng.randrange(len(b)) if b else 0
            if kind == 0 and b:
                b[i] ^= 1 << rng.randrange(8)                       # flip one bit
            elif kind == 1 and b:
                b[i] = rng.randrange(256)                           # replace a byte
            elif kind == 2:
                del b[i:]                                           # truncate
            elif kind == 3:
                b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))   # insert junk
            elif kind == 4 and len(b) > 4:
                b[i:i + 4] = rng.choice([b"\\xff\\xff\\xff\\x7f", b"\\xff\\xff\\xff\\xff", b"\\x00\\x00\\x00\\x80"])
            elif kind == 5 and b:
                j = rng.randrange(len(b)); b[i:i] = b[min(i, j):max(i, j)][:64]       # duplicate a slice
        return bytes(b)

    seeds = [Path(p).read_bytes() for p in sys.argv[3:]]
    rng = random.Random(int(sys.argv[2]))
    work = Path(sys.argv[1])
    escaped, counts = [], {"loaded": 0, "refused": 0}
    for case in range(400):
        path = work / f"case{case}.pkl"
        path.write_bytes(mutate(rng, rng.choice(seeds)))
        try:
            for v in read_pkl(path).values():
                float(np.asarray(v, np.float64).sum())              # touch every element, as assignment does
            counts["loaded"] += 1
        except WeightsError as exc:
            msg = str(exc)
            if "\\n" in msg or str(path) not in msg:
                escaped.append(f"case {case}: unclear message {msg!r}")
            counts["refused"] += 1
        except BaseException as exc:
            escaped.append(f"case {case}: {exc.__class__.__name__}: {str(exc)[:120]}")
    print(json.dumps({"escaped": escaped, **counts}))
''')


def _seed_files(tmp_path: Path) -> list[Path]:
    """Small pickles of the port's layout (kernels with `_b` biases) at the protocols found in the wild."""
    rng = np.random.default_rng(0)
    arrays = {"conv5_3_CPM": rng.normal(size=(1, 1, 2, 3)).astype(np.float32),
              "conv5_3_CPM_b": rng.normal(size=3).astype(np.float32),
              "Mconv1_stage2": np.asfortranarray(rng.normal(size=(2, 2))), "count": np.int64(7),
              "scale": np.float32(0.5)}
    paths = []
    for protocol in (0, 2, 4, 5):
        p = tmp_path / f"seed{protocol}.pkl"
        p.write_bytes(pickle.dumps(arrays, protocol=protocol))
        paths.append(p)
    return paths


def _run_child(tmp_path: Path, args: list[str], code: str = _CHILD) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONFAULTHANDLER": "1"},
                          timeout=900)


def test_fuzzed_pickles_give_only_weights_errors(tmp_path: Path) -> None:
    work = tmp_path / "cases"
    work.mkdir()
    proc = _run_child(tmp_path, [str(work), "2201", *map(str, _seed_files(tmp_path))])
    assert proc.returncode == 0, f"the loader crashed the process (status {proc.returncode}):\n{proc.stderr[-2000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["escaped"] == [], f"{len(report['escaped'])} exceptions escaped: {report['escaped'][:20]}"
    assert report["refused"] > 100  # the mutations did reach the parser's error paths


_OBJECT_ARRAY = textwrap.dedent('''
    import sys
    import numpy as np
    from cpm_core.weights import WeightsError
    from cpm_core.weights.port_pkl import read_pkl
    try:
        for v in read_pkl(sys.argv[1]).values():
            np.asarray(v, np.float32)
        print("loaded")
    except WeightsError as exc:
        print("refused:", exc)
''')


def test_object_dtype_over_raw_bytes_is_refused_not_a_segfault(tmp_path: Path) -> None:
    """A float array's pickle edited into an object dtype with cleared flags: numpy's __setstate__ then takes 16
    bytes of 'A' as two object pointers, and reading them segfaulted the process (`cpm convert-weights`, the app)."""
    raw = pickle.dumps({"conv1_1_b": np.frombuffer(b"A" * 16, np.float64)}, protocol=2)
    raw = raw.replace(b"X\x02\x00\x00\x00f8", b"X\x02\x00\x00\x00O8").replace(b"K\x03X\x01\x00\x00\x00<",
                                                                            b"K\x03X\x01\x00\x00\x00|")
    assert b"O8" in raw
    path = tmp_path / "crafted.pkl"
    path.write_bytes(raw)
    proc = _run_child(tmp_path, [str(path)], code=_OBJECT_ARRAY)
    assert proc.returncode == 0, f"the process crashed (status {proc.returncode}):\n{proc.stderr[-1500:]}"
    out = proc.stdout.strip().splitlines()[-1]
    assert out.startswith("refused:") and "crafted.pkl" in out and "O8" in out, out
