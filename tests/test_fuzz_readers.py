"""No model card, COCO file, labels.txt or TFRecord may crash the process or escape as a traceback (issue #22).

The pattern of tests/test_security_pickle_fuzz.py: a fixed-seed mutation loop runs in a child process (a segfault
fails the test instead of killing pytest) over real files of each format, mutated at the byte level (bit flips,
replaced, inserted, duplicated and cut bytes) and, for the JSON formats, at the value level (a field replaced by
another JSON type, NaN, Infinity, a huge or negative number, a deep nesting). The child reads every case with the
format's public reader and reports every exception that is not the reader's documented one:

* `ModelCard.read` -> `ValueError` naming the file;
* `read_coco`, `read_labels`, `read_tfrecord` -> `DatasetFormatError` (fatal problems); bad records are skipped
  onto `Dataset.issues`, and what is read back must pass `Dataset.validate()` (finite, right joint counts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CASES = 300

_CHILD = textwrap.dedent('''
    import json, math, random, shutil, sys, traceback
    from pathlib import Path

    kind, work, seed, cases = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    seeds = [Path(p) for p in sys.argv[5:]]
    rng = random.Random(seed)

    def mutate_bytes(data):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(6)
            i = rng.randrange(len(b)) if b else 0
            if op == 0 and b:
                b[i] ^= 1 << rng.randrange(8)
            elif op == 1 and b:
                b[i] = rng.randrange(256)
            elif op == 2:
                del b[i:]
            elif op == 3:
                b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 4 and b:
                j = rng.randrange(len(b)); b[i:i] = b[min(i, j):max(i, j)][:64]
            elif op == 5 and b:
                b[i:i] = rng.choice([b"NaN", b"-Infinity", b"1e999", b"-1", b"null", b'"x"', b"[", b"{}", b"\\xff"])
        return bytes(b)

    ODD = [None, True, False, 0, -1, 1e308, -1e308, 2 ** 63, "abc", "", [], {}, [1, 2], {"a": 1}, [[[[[]]]]],
           float("nan"), float("inf"), -float("inf"), 0.5, "NaN", [0, 0, 0, 0], list(range(70)), "../../etc/passwd"]

    def mutate_json(doc):
        """Replace, delete or add one value somewhere in the document."""
        for _ in range(rng.randint(1, 3)):
            node, path = doc, []
            while isinstance(node, (dict, list)) and node and rng.random() < 0.8:
                key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
                path.append((node, key))
                node = node[key]
            if not path:
                return rng.choice(ODD)
            parent, key = path[-1]
            op = rng.randrange(3)
            if op == 0 or isinstance(parent, list):
                parent[key] = rng.choice(ODD)
            elif op == 1:
                del parent[key]
            else:
                parent[rng.choice(["extra", "id", "keypoints", "bbox", "spec", "width"])] = rng.choice(ODD)
        return doc

    def json_case(path, data):
        if rng.random() < 0.5:
            return mutate_bytes(data)
        return json.dumps(mutate_json(json.loads(data))).encode()

    escaped, counts = [], {"read": 0, "refused": 0, "records_skipped": 0}

    if kind == "card":
        from cpm_core.model_card import ModelCard
        base = seeds[0].read_bytes()
        for case in range(cases):
            path = work / f"case{case}" / "card.json"
            path.parent.mkdir()
            path.write_bytes(json_case(path, base))
            try:
                card = ModelCard.read(path)
                card.summary(); card.spec.gflops(); card.to_json()
                counts["read"] += 1
            except ValueError as exc:
                if str(path) not in str(exc):
                    escaped.append(f"case {case}: message does not name the file: {str(exc)[:160]!r}")
                counts["refused"] += 1
            except BaseException as exc:
                escaped.append(f"case {case}: {exc.__class__.__name__}: {str(exc)[:160]}")

    elif kind == "coco":
        from cpm_core.dataset.coco import read_coco
        from cpm_core.dataset.issues import DatasetFormatError
        base = seeds[0].read_bytes()
        for case in range(cases):
            path = work / f"case{case}.json"
            path.write_bytes(json_case(path, base))
            try:
                ds = read_coco(path)
                problems = ds.validate()
                if problems:
                    escaped.append(f"case {case}: read back an invalid dataset: {problems[0]}")
                counts["read"] += 1
                counts["records_skipped"] += len(ds.issues)
            except DatasetFormatError as exc:
                counts["refused"] += 1
            except BaseException as exc:
                escaped.append(f"case {case}: {exc.__class__.__name__}: {str(exc)[:160]}")

    elif kind == "labels":
        from cpm_core.dataset.issues import DatasetFormatError
        from cpm_core.dataset.port_labels import read_labels
        base = seeds[0].read_bytes()
        for case in range(cases):
            folder = work / f"case{case}"
            (folder / "alice" / "imgs").mkdir(parents=True)
            (folder / "alice" / "labels.txt").write_bytes(mutate_bytes(base))
            try:
                ds = read_labels(folder, read_sizes=False, order=rng.choice(["yx", "xy"]))
                problems = ds.validate()
                if problems:
                    escaped.append(f"case {case}: read back an invalid dataset: {problems[0]}")
                counts["read"] += 1
                counts["records_skipped"] += len(ds.issues)
            except DatasetFormatError:
                counts["refused"] += 1
            except BaseException as exc:
                escaped.append(f"case {case}: {exc.__class__.__name__}: {str(exc)[:160]}")

    elif kind == "tfrecord":
        import tensorflow as tf
        from cpm_core.dataset.issues import DatasetFormatError
        from cpm_core.dataset.tfrecord import read_tfrecord
        file_bytes = seeds[0].read_bytes()
        examples = [r.numpy() for r in tf.data.TFRecordDataset(str(seeds[0]))]
        for case in range(cases):
            path = work / f"case{case}.tfrecord"
            if rng.random() < 0.3:  # the file itself: framing and CRCs
                path.write_bytes(mutate_bytes(file_bytes))
            else:  # the examples inside intact framing: the parser's own checks
                with tf.io.TFRecordWriter(str(path)) as writer:
                    for raw in examples:
                        if rng.random() < 0.5:
                            ex = tf.train.Example.FromString(raw)
                            feats = ex.features.feature
                            key = rng.choice(list(feats))
                            op = rng.randrange(4)
                            if op == 0:
                                del feats[key]
                            elif op == 1:
                                feats[key].float_list.value[:] = [rng.choice([float("nan"), 1e38, -1.0, 0.0])] * \\
                                    rng.randint(0, 50)
                            elif op == 2:
                                feats[key].bytes_list.value[:] = [mutate_bytes(b"x" * rng.randint(0, 40))]
                            else:
                                feats[key].int64_list.value[:] = [rng.choice([-1, 0, 2, 7, 2 ** 62])] * \\
                                    rng.randint(0, 30)
                            raw = ex.SerializeToString()
                        if rng.random() < 0.2:
                            raw = mutate_bytes(raw)
                        writer.write(raw)
            try:
                ds = read_tfrecord(path)
                problems = ds.validate()
                if problems:
                    escaped.append(f"case {case}: read back an invalid dataset: {problems[0]}")
                counts["read"] += 1
                counts["records_skipped"] += len(ds.issues)
            except DatasetFormatError:
                counts["refused"] += 1
            except BaseException as exc:
                escaped.append(f"case {case}: {exc.__class__.__name__}: {str(exc)[:160]}")
    print(json.dumps({"escaped": escaped, **counts}))
''')


def _run_child(kind: str, work: Path, seeds: list[Path], seed: int = 2202) -> dict:
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(work), str(seed), str(CASES), *map(str, seeds)],
                          capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONFAULTHANDLER": "1",
                               "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0, f"the {kind} reader crashed the process (status {proc.returncode}):\n" \
                                 f"{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _card_seed(tmp_path: Path) -> Path:
    from cpm_core.model_card import ModelCard
    from cpm_core.spec import get_preset

    card = ModelCard.for_spec(get_preset("hand-rt-128x3"), description="seed", provenance={"steps": 10},
                              metrics={"pck@0.2": 0.5}, decoding={"method": "dark", "blur_sigma": 1.0})
    path = tmp_path / "seed_card.json"
    path.write_text(card.to_json())
    return path


def _labels_seed(tmp_path: Path) -> Path:
    lines = ["# a comment", "a.jpg 10.5 12.25 90 80 " + " ".join(f"{20 + j}.5 {30 + j}" for j in range(21)),
             "a.jpg 1 1 50 50 " + " ".join("0 0" if j % 3 else f"{j + 2} {j + 3}.75" for j in range(21)),
             "b.png 5 5 60 70 " + " ".join(f"{40 - j} {20 + 2 * j}" for j in range(21))]
    path = tmp_path / "seed_labels.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tfrecord_seed(tmp_path: Path) -> Path:
    from run_configs import TINY_COCO

    from cpm_core.dataset.formats import read_dataset, write_dataset

    path = tmp_path / "seed.tfrecord"
    write_dataset(read_dataset(TINY_COCO), path, "tfrecord")
    return path


@pytest.mark.parametrize("kind", ["card", "coco", "labels", "tfrecord"])
def test_fuzzed_files_give_only_documented_errors(tmp_path, kind):
    from run_configs import TINY_COCO

    seed = {"card": _card_seed, "labels": _labels_seed, "tfrecord": _tfrecord_seed,
            "coco": lambda _: TINY_COCO}[kind](tmp_path)
    report = _run_child(kind, tmp_path / "cases", [seed])
    assert report["escaped"] == [], f"{len(report['escaped'])} escaped: {report['escaped'][:15]}"
    # The mutations reached both the refusals and the per-record checks, not only one path.
    assert report["read"] + report["refused"] == CASES
    assert report["refused"] > 10 or report["records_skipped"] > 50, report
