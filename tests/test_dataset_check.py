"""`cpm dataset check` on real labels: the committed hand_video_labels fixture (101 MediaPipe-labelled hands of
one video) is presumably clean, and copies of it with deliberately corrupted labels must have every corruption
among the top flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cpm_core.dataset.check import check_dataset, dataset_stats
from cpm_core.dataset.formats import read_dataset, write_dataset
from cpm_core.dataset.model import Dataset, Instance
from training.cli import main as cpm

FIXTURES = Path(__file__).parent / "fixtures"
LABELS = FIXTURES / "labelling" / "hand_video_labels.json"
TINY = FIXTURES / "dataset" / "tiny_coco" / "tiny.json"
THUMB, LITTLE = [1, 2, 3, 4], [17, 18, 19, 20]
MAX_FALSE_FLAGS = 3  # on 101 clean hands; measured: 0


def _corrupt(ds: Dataset) -> dict[tuple[int, int], str]:
    """Corrupt a few labels in place, as a person might: returns {(sample, instance): what was done}."""
    done: dict[tuple[int, int], str] = {}
    for s in (5, 40):  # thumb and little finger swapped
        inst = ds.samples[s].instances[0]
        inst.keypoints[THUMB + LITTLE] = inst.keypoints[LITTLE + THUMB]
        done[(s, 0)] = "swap"
    rng = np.random.default_rng(0)
    for s, j in ((20, 8), (70, 14)):  # one joint put one hand size away
        inst = ds.samples[s].instances[0]
        a = rng.uniform(0, 2 * np.pi)
        inst.keypoints[j] += max(inst.bbox[2:]) * np.array([np.cos(a), np.sin(a)])
        done[(s, 0)] = "joint"
    inst = ds.samples[90].instances[0]  # box left 1.5 box widths to the right of its hand
    x, y, w, h = inst.bbox
    inst.bbox = (x + 1.5 * w, y, w, h)
    done[(90, 0)] = "box"
    src = ds.samples[55].instances[0]  # the same hand labelled twice (a second, slightly jittered copy)
    ds.samples[55].instances.append(Instance(src.keypoints + 0.3, src.visibility.copy(), src.bbox))
    done[(55, 1)] = "duplicate"
    return done


def test_clean_real_labels_get_few_false_flags():
    ds = read_dataset(LABELS)
    assert ds.num_instances == 101
    flags = check_dataset(ds)
    print(f"false flags on {ds.num_instances} clean hands: {len(flags)}")
    assert len(flags) <= MAX_FALSE_FLAGS, [f.reason for f in flags]
    assert dataset_stats(ds).source == "dataset"


def test_every_corruption_is_among_the_top_flags_with_the_right_kind():
    ds = read_dataset(LABELS)
    done = _corrupt(ds)
    flags = check_dataset(ds)
    top = flags[:len(done) + MAX_FALSE_FLAGS]
    found = {(f.sample_index, f.instance_index): f for f in top}
    missing = [what for key, what in done.items() if key not in found]
    assert not missing, f"not among the top {len(top)}: {missing}; top: {[f.reason for f in top]}"
    for key, what in done.items():
        kinds = {f.kind for f in top if (f.sample_index, f.instance_index) == key}
        if what == "joint":  # a joint moved off the hand also leaves the box: either says where to look
            assert kinds & {"joint", "box"}, kinds
        else:
            assert what in kinds, (what, kinds)
    swap = next(f for f in top if f.kind == "swap")
    assert "thumb and little" in swap.reason and set(swap.joints) == set(THUMB + LITTLE)
    moved = [f for f in top if f.kind == "joint" and (f.sample_index, f.instance_index) == (20, 0)]
    assert not moved or 8 in moved[0].joints  # names the joint that was moved
    dup = next(f for f in top if f.kind == "duplicate")
    assert dup.extras["duplicate_of"] == 56 and dup.annotation_id == 57  # sample 55's hand and its copy
    assert [f.score for f in flags] == sorted((f.score for f in flags), reverse=True)


def test_small_dataset_is_checked_against_the_reference():
    """Four hands cannot teach proportions: the built-in hand reference stands in and still finds a swap."""
    ds = read_dataset(TINY)
    assert dataset_stats(ds).source == "reference"
    assert check_dataset(ds) == []
    inst = ds.samples[0].instances[0]
    inst.keypoints[THUMB + LITTLE] = inst.keypoints[LITTLE + THUMB]
    flags = check_dataset(ds)
    assert flags and flags[0].kind == "swap" and flags[0].sample_index == 0, [f.reason for f in flags]


def test_cli_exit_status_and_json(tmp_path, capsys):
    assert cpm(["dataset", "check", str(LABELS)]) == 0
    ds = read_dataset(LABELS)
    done = _corrupt(ds)
    bad = tmp_path / "bad.json"
    write_dataset(ds, bad, "coco", write_missing_images=False)
    out = tmp_path / "flags.json"
    capsys.readouterr()
    assert cpm(["dataset", "check", str(bad), "--json", str(out), "--top", "3"]) == 1
    printed = capsys.readouterr().out
    assert "flagged" in printed and "... and" in printed
    doc = json.loads(out.read_text())
    assert len(doc["flags"]) >= len(done)
    first = doc["flags"][0]
    assert {"annotation_id", "image", "reason", "score"} <= set(first)
    scores = [f["score"] for f in doc["flags"]]
    assert scores == sorted(scores, reverse=True)
    # annotation ids are the file's: the box moved off its hand (frame 180) is annotation 92, after the duplicate
    box = next(f for f in doc["flags"] if f["kind"] == "box" and f["image"].endswith("hand_00180.jpg"))
    assert box["annotation_id"] == 92


@pytest.mark.parametrize("args,message", [(["/no/such.json"], "no such file"), (["x.json", "--top", "-1"], "--top")])
def test_cli_bad_input_is_one_clear_line(args, message, capsys):
    assert cpm(["dataset", "check", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
