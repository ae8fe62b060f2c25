"""The pure annotation project: edits, labelled state, round trips, import/export, and saves that survive SIGKILL."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from app_support import FOLDER, VIDEO

from cpm_core.dataset.formats import read_dataset, write_dataset
from cpm_core.dataset.project import AnnotationProject, ProjectError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path) -> AnnotationProject:
    imgs = tmp_path / "imgs"
    shutil.copytree(FOLDER, imgs)
    return AnnotationProject.from_folder(tmp_path / "p.cpmproj.json", imgs)


def test_edits_labelled_state_and_round_trip(project):
    p = project
    assert len(p) == 3 and p.frames[0].image == "imgs/hamer_1.jpg" and p.frames[0].width == 160
    p.set_state(0, p.placed_state(0, 0, (10, 20)))
    p.set_state(0, p.placed_state(0, 1, (50, 60)))
    st = p.state(0)
    assert st.labelled and st.bbox_auto
    assert st.bbox == pytest.approx((6.0, 16.0, 48.0, 48.0))  # tight box + 10% of the longer side
    p.set_state(0, p.cycled_state(0, 1))
    assert p.state(0).visibility[1] == 1
    p.set_state(1, p.predicted_state(1, np.tile([[30.0, 40.0, 0.5]], (21, 1))))
    assert p.state(1).predicted.all() and not p.state(1).labelled
    assert p.next_unlabelled(0) == 1
    p.set_state(1, p.placed_state(1, 3, (33, 44)))
    assert not p.state(1).predicted[3] and p.state(1).predicted.sum() == 20 and not p.state(1).labelled
    # a prediction never overwrites a person's joint
    p.set_state(1, p.predicted_state(1, np.zeros((21, 3))))
    assert tuple(p.state(1).keypoints[3]) == (33, 44)
    p.set_state(1, p.confirmed_state(1))
    assert p.state(1).labelled and not p.state(1).predicted.any()
    p.set_state(2, p.bbox_state(2, (5, 5, -3, 10)))
    assert p.state(2).bbox == (2, 5, 3, 10) and not p.state(2).bbox_auto
    p.save()
    q = AnnotationProject.load(p.path)
    for i in range(3):
        assert q.state(i).same_as(p.state(i)), i
    assert q.skeleton == p.skeleton and q.image_path(0).is_file()


def test_load_errors_are_one_clear_message(tmp_path):
    bad = tmp_path / "bad.cpmproj.json"
    bad.write_text("{not json")
    with pytest.raises(ProjectError, match="not a valid project file"):
        AnnotationProject.load(bad)
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(ProjectError, match="not a CPM annotation project"):
        AnnotationProject.load(bad)


def test_from_video_and_dataset_export_round_trip(tmp_path, project):
    v = AnnotationProject.from_video(tmp_path / "v" / "clip.cpmproj.json", VIDEO, 3, "kmeans")
    assert len(v) == 3 and all(v.image_path(i).is_file() for i in range(3))
    assert v.frames[0].extras["source"] == VIDEO.name
    p = project
    rng = np.random.default_rng(0)
    for i in range(3):
        for j in range(21):
            p.set_state(i, p.placed_state(i, j, rng.uniform(5, 100, 2)))
    p.set_state(0, p.visibility_state(0, 4, 0))
    p.set_state(1, p.visibility_state(1, 5, 1))
    for fmt, target in (("coco", tmp_path / "out" / "coco.json"), ("labels", tmp_path / "labels")):
        write_dataset(p.to_dataset(), target, fmt)
        ds = read_dataset(target, fmt)
        assert ds.num_images == 3
        by_name = {Path(s.image).name: s for s in ds.samples}
        for i in range(3):
            st = p.state(i)
            inst = by_name[Path(p.frames[i].image).name].instances[0]
            np.testing.assert_allclose(inst.keypoints[st.placed], st.keypoints[st.placed], atol=0.01)
            assert ((inst.visibility > 0) == st.placed).all()
            if fmt == "coco":
                assert (inst.visibility == st.visibility).all()
        back = AnnotationProject.from_dataset(tmp_path / f"{fmt}.cpmproj.json", ds)
        assert len(back) == 3 and all(back.is_labelled(i) for i in range(3))


_SAVER = """
import sys, numpy as np
from cpm_core.dataset.project import AnnotationProject
p = AnnotationProject.load(sys.argv[1])
rng = np.random.default_rng()
k = 0
print("ready", flush=True)
while True:
    k += 1
    i = int(rng.integers(len(p)))
    p.set_state(i, p.placed_state(i, int(rng.integers(21)), rng.uniform(0, 100, 2)))
    p.extras["saves"] = k
    p.save()
    print("saved", k, flush=True)
"""


def test_sigkill_mid_save_never_leaves_a_broken_file(tmp_path, project):
    # a big project (2000 frames, ~1 MB of JSON) so the kill often lands inside a write
    p = project
    p.frames = [type(f)(f.image, f.width, f.height) for f in p.frames * 667][:2000]
    for i in range(2000):
        p.set_state(i, p.predicted_state(i, np.full((21, 3), 7.0)))
    p.save()
    assert p.path.stat().st_size > 500_000
    env = dict(os.environ, PYTHONPATH=str(REPO))
    rnd = random.Random(1)
    last = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(p.path)], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        # Wait for one finished save before the random delay, so that a slow (busy) machine still kills the
        # saver after a save rather than only ever during its first one: the test must not depend on load.
        assert proc.stdout.readline().startswith(b"saved")
        time.sleep(rnd.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        q = AnnotationProject.load(p.path)  # always a complete file, the previous or the new one
        assert len(q) == 2000
        last = q.extras.get("saves", 0)
    assert last > 0  # the loop really saved between kills
    leftovers = list(tmp_path.glob(".p.cpmproj.json.*.tmp"))
    assert len(leftovers) <= 6  # at most one temp file per kill, never the project itself


def test_project_file_reads_as_a_dataset_of_its_labelled_frames(tmp_path, project):
    """Training and `cpm dataset` take an annotation project directly; only labelled frames count."""
    p = project
    for j in range(21):
        p.set_state(1, p.placed_state(1, j, np.array([10.0 + j, 20.0 + j])))
    p.save()
    ds = read_dataset(p.path)
    labelled = [i for i in range(len(p)) if p.is_labelled(i)]
    assert ds.num_images == len(labelled) >= 1
    inst = {Path(s.image).name: s for s in ds.samples}[Path(p.frames[1].image).name].instances[0]
    np.testing.assert_allclose(inst.keypoints[5], [15.0, 25.0])
