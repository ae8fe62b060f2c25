"""bench/human_hands.py's converters on the real human-labelled files (from mmpose's test data): COCO-WholeBody
hands (a slimmed copy in tests/fixtures/human_hands) and InterHand2.6M's 3D joints projected to 2D, both in our
21-joint hand order, written as COCO and read back by the project's reader.

InterHand2.6M's labels and images are CC BY-NC 4.0, so they are not copied into this repository: its tests read
../shared/data/labelled/interhand and skip where that is absent (CI)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "human_hands"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

INTERHAND = SHARED / "labelled" / "interhand"
needs_interhand = pytest.mark.skipif(not (INTERHAND / "test_interhand2.6m_data.json").is_file(),
                                     reason="../shared/data/labelled/interhand is not here (CC BY-NC: not copied)")


def _bench():
    """bench/human_hands.py as a module (bench/ at the end of the path: its training.py must not shadow ours)."""
    if str(BENCH) not in sys.path:
        sys.path.append(str(BENCH))
    if "bench_human_hands" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_human_hands", BENCH / "human_hands.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_human_hands"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_human_hands"]


def _hands(doc: dict) -> list[tuple[dict, np.ndarray]]:
    images = {img["id"]: img for img in doc["images"]}
    return [(images[a["image_id"]], np.asarray(a["keypoints"], np.float64).reshape(-1, 3)) for a in doc["annotations"]]


def test_interhand_order_maps_tip_to_base_wrist_last_onto_ours() -> None:
    order = _bench().INTERHAND_TO_OURS
    assert sorted(order) == list(range(21))
    assert order[0] == 20  # wrist
    assert order[1:5] == [3, 2, 1, 0]  # thumb1 (base) .. thumb4 (tip)
    assert order[17:21] == [19, 18, 17, 16]  # little1 .. little4


@needs_interhand
def test_interhand_order_gives_anatomical_bone_lengths_in_3d() -> None:
    """Whatever the pose, a finger's first bone (base to middle joint) is longer than its last (to the tip), and
    the palm (wrist to a finger's base) longer than both: a reversed finger or a wrong hand block would break it."""
    hh = _bench()
    data = json.loads((INTERHAND / "test_interhand2.6m_data.json").read_text())
    joints = json.loads((INTERHAND / "test_interhand2.6m_joint_3d.json").read_text())
    checked = 0
    for img, ann in zip(data["images"], data["annotations"]):
        world = np.asarray(joints[str(img["capture"])][str(img["frame_idx"])]["world_coord"])
        valid = np.asarray(ann["joint_valid"]).reshape(42) > 0
        for first in (0, 21):
            if not valid[first:first + 21].all():
                continue
            ours = world[[first + i for i in hh.INTERHAND_TO_OURS]]
            for f in range(1, 5):  # index .. little (the thumb's base is the carpometacarpal joint)
                base, second, tip, last = (1 + 4 * f, 2 + 4 * f, 4 + 4 * f, 3 + 4 * f)
                first_bone = np.linalg.norm(ours[second] - ours[base])
                last_bone = np.linalg.norm(ours[tip] - ours[last])
                palm = np.linalg.norm(ours[base] - ours[0])
                assert palm > first_bone > last_bone, (img["file_name"], first, f)
            checked += 1
    assert checked == 6


@needs_interhand
def test_interhand_projection_lands_in_the_image_and_rebuilds_the_datasets_box() -> None:
    """InterHand2.6M's annotation box is its labelled 2D joints' extent (both hands) grown 1.2 times about its
    centre: the projected joints must give that box back to a pixel, and lie inside the image."""
    hh = _bench()
    doc = hh.interhand_hands(INTERHAND)
    assert len(doc["annotations"]) == 6
    assert sorted(a["handedness"] for a in doc["annotations"]) == ["Left"] * 3 + ["Right"] * 3
    for a in doc["annotations"]:  # right hand = joints 0-20, left = 21-41: a one-hand image's hand_type says which
        if a["hand_type"] in ("left", "right"):
            assert a["handedness"] == a["hand_type"].capitalize()
    raw = json.loads((INTERHAND / "test_interhand2.6m_data.json").read_text())
    boxes = {a["image_id"]: a["bbox"] for a in raw["annotations"]}
    by_image: dict[int, list[np.ndarray]] = {}
    for img, kp in _hands(doc):
        assert kp.shape == (21, 3) and (kp[:, 2] == 2).all()
        assert (kp[:, 0] >= 0).all() and (kp[:, 0] < img["width"]).all()
        assert (kp[:, 1] >= 0).all() and (kp[:, 1] < img["height"]).all()
        by_image.setdefault(img["source_image_id"], []).append(kp[:, :2])
    assert len(by_image) == 4
    for image_id, hands in by_image.items():
        xy = np.concatenate(hands)
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        centre, size = (lo + hi) / 2, (hi - lo) * 1.2
        x, y, w, h = boxes[image_id]
        np.testing.assert_allclose([centre[0] - size[0] / 2, centre[1] - size[1] / 2, *size], [x, y, w, h], atol=1.0)


@needs_interhand
def test_interhand_wrist_and_middle_tip_where_the_drawing_shows_them() -> None:
    """image29590 (one left hand, fingers to the left, forearm to the right): pinned from the check drawing
    (`draw_checks`), where the wrist sits where the forearm meets the hand and the middle tip on the fingertip."""
    doc = _bench().interhand_hands(INTERHAND)
    (kp,) = [kp for img, kp in _hands(doc) if img["file_name"].endswith("image29590.jpg")]
    np.testing.assert_allclose(kp[0, :2], [200.3, 200.6], atol=2.0)
    np.testing.assert_allclose(kp[12, :2], [52.0, 149.3], atol=2.0)


def test_wholebody_hands_keep_order_side_and_box() -> None:
    hh = _bench()
    src = json.loads((FIXTURE / "coco_body" / "test_coco_wholebody.json").read_text())
    doc = hh.wholebody_hands(FIXTURE / "coco_body" / "test_coco_wholebody.json")
    assert len(doc["annotations"]) == 10  # every hand the file marks valid (10 of 26 people x 2 hands)
    people = {a["id"]: a for a in src["annotations"]}
    for ann in doc["annotations"]:
        person = people[ann["source_ann_id"]]
        side = ann["handedness"].lower()
        assert person[f"{side}hand_valid"]
        raw = np.asarray(person[f"{side}hand_kpts"]).reshape(21, 3)
        kp = np.asarray(ann["keypoints"], np.float64).reshape(21, 3)
        np.testing.assert_allclose(kp[:, :2], raw[:, :2], atol=0.01)  # the same order as ours: copied as is
        assert ann["num_keypoints"] >= hh.MIN_JOINTS
        x, y, w, h = person[f"{side}hand_box"]
        wrist = kp[0, :2]
        assert x - 0.25 * w <= wrist[0] <= x + 1.25 * w and y - 0.25 * h <= wrist[1] <= y + 1.25 * h
        bx, by, bw, bh = ann["bbox"]
        assert x <= bx + bw / 2 <= x + w and y <= by + bh / 2 <= y + h  # the extent's centre inside their box


@needs_interhand
def test_written_sets_read_back_with_21_joints(tmp_path: Path) -> None:
    from cpm_core.dataset.formats import read_dataset
    from cpm_core.skeleton import HAND_21

    labelled = tmp_path / "labelled"
    labelled.mkdir()
    (labelled / "coco_body").symlink_to(FIXTURE / "coco_body")
    (labelled / "interhand").symlink_to(INTERHAND)
    paths = _bench().write_sets(tmp_path / "out", labelled)
    counts = {}
    for name, path in paths.items():
        ds = read_dataset(path)
        assert ds.skeleton is HAND_21 and ds.skeleton.num_joints == 21
        assert not ds.issues
        counts[name] = sum(len(s.instances) for s in ds.samples)
        for sample in ds.samples:
            assert Path(sample.image).is_absolute()
            for inst in sample.instances:
                assert inst.keypoints.shape == (21, 2)
                assert inst.extras["handedness"] in ("Left", "Right")
    assert counts == {"coco_wholebody": 10, "interhand": 6, "both": 16}
    interhand = read_dataset(paths["interhand"])
    assert all(interhand.image_path(s).is_file() for s in interhand.samples)  # the images are found


def test_category_is_hand_pseudos() -> None:
    category = _bench().hand_category()
    assert category["keypoints"][:2] == ["wrist", "thumb1"] and len(category["keypoints"]) == 21
    pseudo = SHARED / "hand_pseudo" / "val.json"
    if pseudo.is_file():
        assert category == json.loads(pseudo.read_text())["categories"][0]


def test_fixture_gives_what_the_shared_files_give() -> None:
    """The slimmed COCO-WholeBody copy converts exactly as the full file in ../shared (when present)."""
    full = SHARED / "labelled" / "coco_body" / "test_coco_wholebody.json"
    if not full.is_file():
        pytest.skip("../shared/data/labelled is not here")
    hh = _bench()
    image_dir = full.parent
    assert (hh.wholebody_hands(FIXTURE / "coco_body" / "test_coco_wholebody.json", image_dir)
            == hh.wholebody_hands(full))


def test_table_prints_every_set_and_the_gap() -> None:
    def res(pck: float) -> dict:
        return {"pck": pck, "pck_ci95": [pck - 0.1, pck + 0.1], "subjects": 3}

    results = {name: {"palm": res(0.5), "label": res(0.6), "search": res(0.4)} for name in _bench().SETS}
    results["hands"] = [{"source": "interhand2.6m", "image": "a.jpg", "handedness": "Left", "hand_type": "left",
                         "box_px": 100.0, "palm_found": True, "palm_side_wrong": True, "pck_palm": 0.5,
                         "pck_label": 0.6}]
    text = _bench().table(results, ["palm", "label", "search"])
    assert "+0.100" in text and "side wrong for 1" in text and "interhand" in text
