"""Read a pickle as data only: dicts, lists, tuples, strings, numbers and plain numeric numpy arrays.

Why not `pickle.load`: a pickle is a program. Its GLOBAL / REDUCE opcodes call whatever the file names
(`os.system`, `builtins.eval`, `subprocess.Popen`), so loading a downloaded `.pkl` with `pickle.load` runs its
author's code. The CPM port's weights files only ever hold a dict of layer name -> numpy array, so this reader
admits just the globals those pickles name (numpy's array, dtype and scalar reconstructors, and `_codecs.encode`,
which Python 3 uses for bytes in protocols 0-2), and refuses everything else with the file and the global named.

Why not let numpy rebuild the admitted arrays: `ndarray.__setstate__` / `dtype.__setstate__` trust their state
(crafted dtype flags or sizes have crashed the process), so the admitted globals map onto inert stand-ins that only
record their arguments. After the pickle is read, each array is made here with `np.frombuffer`, once its dtype is
known to be a plain number type and its data length matches its shape. Nothing from the file is ever called.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re
from pathlib import Path
from typing import Any

import numpy as np

from cpm_core.weights.errors import WeightsError

MAX_DIMS = 32
MAX_DEPTH = 64
_DTYPE_SPEC = re.compile(r"^(?:b1|[iu][1248]|f[248]|f16|c8|c16|c32)$")
_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


class _RefusedContent(Exception):
    """The pickle parsed but holds something a weights file never does (object arrays, sets, records...)."""


class _NdarrayTag:
    """What `numpy.ndarray` means inside the pickle: a tag `_reconstruct` checks; not a class, not callable, so
    NEWOBJ / INST / OBJ opcodes cannot instantiate it."""

    __slots__ = ()


_NDARRAY = _NdarrayTag()


class _ArrayStub:
    """Stands for `numpy.core.multiarray._reconstruct(ndarray, ...)`; BUILD hands it the array's state."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _DtypeStub:
    """Stands for `numpy.dtype(spec, align, copy)`; BUILD hands it (version, byte order, ...)."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = True) -> None:
        self.spec = spec
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ScalarStub:
    """Stands for `numpy.core.multiarray.scalar(dtype, data)` (a numpy scalar such as np.float32(1.5))."""

    def __init__(self, dtype: Any, data: Any = None) -> None:
        self.dtype, self.data = dtype, data


class _BufferStub:
    """Stands for `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)` (protocol-5 arrays)."""

    def __init__(self, buf: Any, dtype: Any, shape: Any, order: Any = "C") -> None:
        self.buf, self.dtype, self.shape, self.order = buf, dtype, shape, order


def _reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> _ArrayStub:
    if cls is not _NDARRAY:
        raise _RefusedContent("an array reconstructed as something other than numpy.ndarray")
    return _ArrayStub()


def _latin1_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes (always 'latin1'); no other codec is looked up."""
    if not isinstance(text, str) or not isinstance(encoding, str) or encoding.lower() not in _LATIN1:
        raise _RefusedContent(f"_codecs.encode with codec {encoding!r}")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    """`bytes()`: how protocols 0-2 pickle b''."""
    if args:
        raise _RefusedContent("bytes(...) with arguments")
    return b""


_ALLOWED: dict[tuple[str, str], Any] = {}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _reconstruct
    _ALLOWED[(_mod, "scalar")] = _ScalarStub
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _BufferStub
_ALLOWED[("numpy", "ndarray")] = _NDARRAY
_ALLOWED[("numpy", "dtype")] = _DtypeStub
_ALLOWED[("_codecs", "encode")] = _latin1_encode
_ALLOWED[("builtins", "bytes")] = _empty_bytes
_ALLOWED[("__builtin__", "bytes")] = _empty_bytes


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a callable outside the allow-list (the usual sign of a pickle that runs code)."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class _DataUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` returns only the inert stand-ins above."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED.get((module, name))
        if found is None:
            raise RefusedGlobal(module, name)
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise _RefusedContent("a persistent id (external object reference)")


def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):  # Python 2 `str` read with encoding='latin1'
        return data.encode("latin1")
    if isinstance(data, list):
        raise _RefusedContent(f"{what} holds Python objects (an object array)")
    raise _RefusedContent(f"{what} data is a {type(data).__name__}, not bytes")


def _dtype(stub: Any) -> np.dtype:
    """A plain number dtype (bool, int, uint, float, complex) in the byte order the pickle gives."""
    if not isinstance(stub, _DtypeStub):
        raise _RefusedContent(f"an array dtype given as {type(stub).__name__}")
    spec = stub.spec
    if not isinstance(spec, str) or not _DTYPE_SPEC.match(spec):
        raise _RefusedContent(f"dtype {spec!r} (only bool, int, uint, float and complex arrays are read)")
    dt = np.dtype(spec)
    state = stub.state
    if state is None:
        return dt
    if not isinstance(state, tuple) or len(state) < 5 or not isinstance(state[0], int):
        raise _RefusedContent("a malformed dtype state")
    order = state[1]
    if order not in ("<", ">", "|", "="):
        raise _RefusedContent(f"dtype byte order {order!r}")
    if any(part is not None for part in state[2:5]):
        raise _RefusedContent(f"a structured or sub-array dtype ({spec})")
    if order in "<>" and dt.itemsize > 1:
        dt = dt.newbyteorder(order)
    return dt


def _shape(shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or len(shape) > MAX_DIMS:
        raise _RefusedContent(f"an array shape given as {type(shape).__name__}")
    if not all(type(d) is int and d >= 0 for d in shape):
        raise _RefusedContent(f"array shape {shape!r}")
    return shape


def _array(data: Any, dtype: np.dtype, shape: tuple[int, ...], fortran: bool) -> np.ndarray:
    """The array, after checking the data holds exactly shape x itemsize bytes (numpy is never asked to trust it)."""
    raw = _as_bytes(data, "an array's")
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw):
        raise _RefusedContent(f"an array of shape {shape} {dtype} with {len(raw)} bytes of data "
                              f"(needs {count * dtype.itemsize})")
    flat = np.frombuffer(raw, dtype=dtype, count=count)
    return flat.reshape(shape, order="F" if fortran else "C")


def _array_from_state(stub: _ArrayStub) -> np.ndarray:
    state = stub.state
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _RefusedContent("an array without its state")
    if len(state) == 5 and type(state[0]) is not int:
        raise _RefusedContent("a malformed array state")
    shape, dtype, fortran, data = state[-4:]
    if type(fortran) not in (bool, int):
        raise _RefusedContent("a malformed array state")
    return _array(data, _dtype(dtype), _shape(shape), bool(fortran))


def _array_from_buffer(stub: _BufferStub) -> np.ndarray:
    if stub.order not in ("C", "F"):
        raise _RefusedContent(f"array order {stub.order!r}")
    return _array(stub.buf, _dtype(stub.dtype), _shape(stub.shape), stub.order == "F")


def _scalar(stub: _ScalarStub) -> np.generic:
    dt = _dtype(stub.dtype)
    return _array(stub.data, dt, (), False)[()]


_PLAIN = (str, bytes, int, float, complex, bool, type(None))
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_REFUSED_OPS = {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4"}


def _check_opcodes(raw: bytes) -> None:
    """Walk the opcode stream (pure Python, nothing built) before the C unpickler sees it. A memo index is an
    array index there: one LONG_BINPUT 1260921713 in a 300-byte file made it allocate and zero ~10 GB. Pickles
    number their memo entries from 0 in order, so an index beyond the opcodes read so far is refused."""
    for count, (op, arg, _pos) in enumerate(pickletools.genops(io.BytesIO(raw))):
        if op.name in _MEMO_PUTS and (not isinstance(arg, int) or not 0 <= arg <= count):
            raise _RefusedContent(f"a memo index {arg} out of order")
        if op.name in _REFUSED_OPS:
            raise _RefusedContent(f"a {op.name} opcode (external object reference)")


def _finish(obj: Any, memo: dict[int, Any], busy: set[int], depth: int) -> Any:
    """Plain data with every stand-in turned into its numpy value; shared parts are converted once (memo), and
    cycles or absurd nesting are refused rather than recursed into."""
    if isinstance(obj, _PLAIN):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    if key in busy or depth > MAX_DEPTH:
        raise _RefusedContent("a cyclic or too deeply nested structure")
    busy.add(key)
    if isinstance(obj, _ArrayStub):
        out: Any = _array_from_state(obj)
    elif isinstance(obj, _BufferStub):
        out = _array_from_buffer(obj)
    elif isinstance(obj, _ScalarStub):
        out = _scalar(obj)
    elif isinstance(obj, bytearray):
        out = bytes(obj)
    elif isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            fk = _finish(k, memo, busy, depth + 1)
            if not isinstance(fk, _PLAIN):
                raise _RefusedContent(f"a dict key of type {type(fk).__name__}")
            out[fk] = _finish(v, memo, busy, depth + 1)
    elif isinstance(obj, list):
        out = [_finish(v, memo, busy, depth + 1) for v in obj]
    elif isinstance(obj, tuple):
        out = tuple(_finish(v, memo, busy, depth + 1) for v in obj)
    else:
        raise _RefusedContent(f"a {type(obj).__name__}")
    busy.discard(key)
    memo[key] = out
    return out


def load_data_pickle(path: str | Path) -> Any:
    """The pickle at `path` as plain data and numpy arrays, or a one-line `WeightsError` naming the file.

    Every failure (a refused global, a truncated or corrupt stream, a malformed array) becomes a `WeightsError`:
    a user's file must never end the process with a traceback.
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    # From memory, not the open file: a corrupt length field then fails as truncated instead of allocating it.
    try:
        _check_opcodes(raw)
        data = _DataUnpickler(io.BytesIO(raw), encoding="latin1").load()
        return _finish(data, {}, set(), 0)
    except RefusedGlobal as exc:
        raise WeightsError(f"{path}: refused to load: the pickle names {exc.module}.{exc.name}, which a weights "
                           "file never holds (a pickle can run code; only dicts, lists, strings, numbers and "
                           "numeric numpy arrays are read)") from None
    except _RefusedContent as exc:
        raise WeightsError(f"{path}: refused to load: the pickle holds {exc} (only dicts, lists, strings, "
                           "numbers and numeric numpy arrays are read)") from None
    except RecursionError:
        raise WeightsError(f"{path}: not a readable pickle of CPM weights (nested too deeply)") from None
    except MemoryError:
        raise WeightsError(f"{path}: not a readable pickle of CPM weights (out of memory while reading it)") \
            from None
    except Exception as exc:  # noqa: BLE001 - any parse failure of a user's file is reported, never raised raw
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise WeightsError(f"{path}: not a readable pickle of CPM weights ({exc.__class__.__name__}"
                           f"{': ' + detail if detail else ''})") from None
