"""A `.pkl` is data, never code: the port's weights loader must refuse every pickle that names a callable other
than numpy's array reconstruction, leave no side effect, and say so in one clear line (issue #22, item 1).

Each payload would create a marker file if any part of it ran; the tests check the marker is absent, that the
error is a `WeightsError` naming the file and the refused global, and that `cpm convert-weights` exits non-zero
with no traceback. The legitimate layouts (Python 3 pickles at every protocol, a Python 2 protocol-2 pickle of
numpy 1.x arrays) still load bit for bit.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cpm_core.weights import WeightsError
from cpm_core.weights.port_pkl import read_pkl

REPO = Path(__file__).resolve().parents[1]


class _Reduce:
    """Pickles as `func(*args)`: the classic way a pickle runs code at load time."""

    def __init__(self, func, args: tuple) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, bytes]:
    """Pickles that would create `marker` when loaded by `pickle.load`."""
    import builtins
    import posix

    cmd = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    weights = {"conv1_1": np.zeros((3, 3, 3, 4), np.float32), "conv1_1_b": np.zeros(4, np.float32)}
    return {
        "os.system": pickle.dumps(_Reduce(os.system, (cmd,)), protocol=2),
        "posix.system": pickle.dumps(_Reduce(posix.system, (cmd,)), protocol=4),
        "subprocess.call": pickle.dumps(_Reduce(subprocess.call, (["touch", str(marker)],)), protocol=4),
        "subprocess.Popen": pickle.dumps(_Reduce(subprocess.Popen, (["touch", str(marker)],)), protocol=5),
        "builtins.eval": pickle.dumps(_Reduce(builtins.eval, (code,)), protocol=4),
        "builtins.exec": pickle.dumps(_Reduce(builtins.exec, (code,)), protocol=0),
        # Hidden inside an otherwise valid weights dict, after real arrays.
        "nested": pickle.dumps({**weights, "meta": [_Reduce(os.system, (cmd,))]}, protocol=2),
        # Hand-written protocol-0 opcodes, the form most exploit write-ups use.
        "opcodes": b"cos\nsystem\n(V" + cmd.encode() + b"\ntR.",
        # numpy's own loader reached through the pickle: np.load with allow_pickle would unpickle again.
        "numpy.load": pickle.dumps(_Reduce(np.load, (str(marker), None, True)), protocol=4),
    }


@pytest.mark.parametrize("name", list(_payloads(Path("x"))))
def test_crafted_pickle_runs_nothing_and_names_the_global(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_payloads(marker)[name])
    with pytest.raises(WeightsError) as err:
        read_pkl(path)
    assert not marker.exists(), f"{name}: loading the pickle ran code"
    msg = str(err.value)
    assert "evil.pkl" in msg and "refused" in msg and "\n" not in msg
    assert name.split(".")[-1] in msg or name in ("nested", "opcodes")


def test_convert_weights_cli_refuses_code_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for suffix in (".pkl", ".bin"):  # .bin is sniffed as a pickle by its first byte
        path = tmp_path / f"evil{suffix}"
        path.write_bytes(_payloads(marker)["os.system"])
        proc = subprocess.run([sys.executable, "-m", "training.cli", "convert-weights", str(path),
                               str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
        assert not marker.exists(), "cpm convert-weights ran code from the pickle"
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if "evil" in ln]
        assert len(lines) == 1 and "refused" in lines[0] and "posix.system" in lines[0], proc.stderr
        assert not (tmp_path / "out").exists()


def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {"conv1_1": rng.normal(size=(3, 3, 3, 4)).astype(np.float32),
            "conv1_1_b": rng.normal(size=4).astype(np.float32),
            "fortran": np.asfortranarray(rng.normal(size=(5, 3))),
            "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
            "scalar_like": np.array(2.5, np.float64), "empty": np.zeros((0, 3), np.float32)}


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_python3_pickles_of_arrays_still_load(tmp_path: Path, protocol: int) -> None:
    arrays = _weights()
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps(arrays, protocol=protocol))
    got = read_pkl(path)
    assert set(got) == set(arrays)
    for k, a in arrays.items():
        assert got[k].dtype.str[1:] == a.dtype.str[1:] and got[k].shape == a.shape  # byte order may differ
        np.testing.assert_array_equal(got[k], a)


def _py2_str(b: bytes) -> bytes:
    """A Python 2 `str` as cPickle writes it (SHORT_BINSTRING / BINSTRING): bytes that load as latin-1 text."""
    return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<i", len(b))) + b


def _py2_array(a: np.ndarray) -> bytes:
    """cPickle protocol 2 of a numpy 1.x array, opcode for opcode (numpy.core.multiarray._reconstruct)."""
    dims = b"".join(b"J" + struct.pack("<i", d) for d in a.shape)
    dtype = (b"cnumpy\ndtype\n" + _py2_str(a.dtype.str[1:].encode()) + b"K\x00K\x01\x87R"
             + b"(K\x03" + _py2_str(a.dtype.str[:1].encode()) + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
            + b"(K\x01(" + dims + b"t" + dtype + b"\x89" + _py2_str(a.tobytes()) + b"tb")


def test_python2_port_pickle_loads(tmp_path: Path) -> None:
    """The port's published files were written by Python 2's cPickle: str keys and str array data."""
    arrays = {"conv1_1": np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4) / 7,
              "conv1_1_b": np.linspace(-1, 1, 300).astype(np.float32)}
    body = b"".join(_py2_str(k.encode()) + _py2_array(a) for k, a in arrays.items())
    path = tmp_path / "py2.pkl"
    path.write_bytes(b"\x80\x02}(" + body + b"u.")
    # The hand-written bytes are what the real unpickler reads as the port's layout...
    ref = pickle.loads(path.read_bytes(), encoding="latin1")
    np.testing.assert_array_equal(ref["conv1_1_b"], arrays["conv1_1_b"])
    # ...and the restricted reader gives the same arrays.
    got = read_pkl(path)
    for k, a in arrays.items():
        assert got[k].dtype == a.dtype
        np.testing.assert_array_equal(got[k], a)


@pytest.mark.parametrize("obj", [np.array([1, "a"], dtype=object), {"s": {1, 2}}, np.zeros(2, "U3"),
                                 np.zeros(2, [("a", "f4"), ("b", "i4")])])
def test_non_numeric_content_is_refused(tmp_path: Path, obj) -> None:
    path = tmp_path / "odd.pkl"
    path.write_bytes(pickle.dumps({"x": obj}, protocol=4))
    with pytest.raises(WeightsError, match="odd.pkl"):
        read_pkl(path)
