"""Dataset export never copies or embeds a file outside the dataset's folder unless the user says so
(issue #22, item 3).

A downloaded COCO file naming `../../secret` or an absolute path, or a labels.txt line naming `../..`, made
`cpm dataset convert` copy that file byte for byte (labels) or embed its bytes (tfrecord), ready to be shared with
the dataset. (Symlinks inside the dataset folder are followed on purpose: see `Dataset.source_image_path`.)
The tests plant a secret outside the dataset folder and check
that no output holds its bytes, that the command fails with one line naming the image and the flag, and that with
`--allow-outside-root` the copy is made without broader permissions than the source had.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from cpm_core.dataset.commands import register

FIXTURE = Path(__file__).parent / "fixtures" / "dataset" / "tiny_coco"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cpm")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _secret_png(path: Path) -> bytes:
    """A private (0600) image outside the dataset: what must not leak into an export."""
    img = np.random.default_rng(5).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    path.chmod(0o600)
    return buf.tobytes()


def _coco_with(tmp_path: Path, names: list[str]) -> Path:
    """The tiny fixture's COCO file with its first images renamed to `names`, in `tmp_path/ds/`."""
    ds = tmp_path / "ds"
    ds.mkdir()
    doc = json.loads((FIXTURE / "tiny.json").read_text())
    for img, name in zip(doc["images"], names):
        img["file_name"] = name
    for img in doc["images"][len(names):]:
        src = FIXTURE / img["file_name"]
        dst = ds / img["file_name"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    path = ds / "set.json"
    path.write_text(json.dumps(doc))
    return path


def _outputs_hold(folder: Path, secret: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


@pytest.mark.parametrize("to", ["labels", "tfrecord", "port-tfrecord", "cmu-hand"])
@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_coco_paths_leaving_the_folder_are_refused(tmp_path: Path, capsys, to: str, how: str) -> None:
    secret = _secret_png(tmp_path / "private" / "secret.png")
    name = "../private/secret.png" if how == "dotdot" else str(tmp_path / "private" / "secret.png")
    coco = _coco_with(tmp_path, [name])
    out_dir = tmp_path / "out"
    out = out_dir / ("t.tfrecord" if "tfrecord" in to else "set")
    code = run(["dataset", "convert", str(coco), str(out), "--to", to])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert not out_dir.exists() or _outputs_hold(out_dir, secret) == []
    assert len(err) == 1 and "secret.png" in err[0] and "--allow-outside-root" in err[0], err


def test_labels_names_with_dotdot_are_refused(tmp_path: Path, capsys) -> None:
    secret = _secret_png(tmp_path / "private" / "secret.png")
    person = tmp_path / "lab" / "p1"
    (person / "imgs").mkdir(parents=True)
    joints = " ".join(["10 10"] * 21)
    (person / "labels.txt").write_text(f"../../../private/secret.png 0 0 20 20 {joints}\n")
    for to, out in (("labels", tmp_path / "out" / "lab"), ("tfrecord", tmp_path / "out" / "t.tfrecord")):
        assert run(["dataset", "convert", str(tmp_path / "lab"), str(out), "--to", to]) == 2
        assert "--allow-outside-root" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or _outputs_hold(tmp_path / "out", secret) == []


def test_allow_outside_root_copies_without_widening_permissions(tmp_path: Path) -> None:
    secret = _secret_png(tmp_path / "private" / "secret.png")
    coco = _coco_with(tmp_path, ["../private/secret.png"])
    out = tmp_path / "out"
    assert run(["dataset", "convert", str(coco), str(out), "--to", "labels", "--allow-outside-root"]) == 0
    copies = _outputs_hold(out, secret)
    assert len(copies) == 1
    assert stat.S_IMODE(copies[0].stat().st_mode) & 0o077 == 0  # the 0600 source stays private
    others = list(out.rglob("*.jpg"))  # copies of in-folder images: no permission bit their source lacks
    assert others and all(p.stat().st_mode & ~os.stat(FIXTURE / "images" / p.name).st_mode & 0o777 == 0
                          for p in others)


def test_paths_inside_the_folder_still_convert(tmp_path: Path) -> None:
    coco = _coco_with(tmp_path, ["images/./hand_00000.jpg"])
    (coco.parent / "images" / "hand_00000.jpg").write_bytes((FIXTURE / "images" / "hand_00000.jpg").read_bytes())
    assert run(["dataset", "convert", str(coco), str(tmp_path / "lab"), "--to", "labels"]) == 0
    assert run(["dataset", "convert", str(coco), str(tmp_path / "t.tfrecord"), "--to", "tfrecord"]) == 0


def test_project_images_outside_its_folder(tmp_path: Path, capsys) -> None:
    """A project's frames are images its user added in the app: the app's export takes them wherever they are;
    `cpm dataset convert` of the project file still needs the flag, like any other dataset."""
    from cpm_core.dataset.formats import write_dataset
    from cpm_core.dataset.project import AnnotationProject

    imgs = tmp_path / "frames"
    imgs.mkdir()
    (imgs / "a.jpg").write_bytes((FIXTURE / "images" / "hand_00000.jpg").read_bytes())
    proj = AnnotationProject.from_images(tmp_path / "proj" / "p.cpmproj.json", [imgs / "a.jpg"])
    for j in range(21):
        proj.set_state(0, proj.placed_state(0, j, np.array([10.0 + j, 20.0 + j])))
    proj.save()
    assert proj.frames[0].image.startswith("../")
    write_dataset(proj.to_dataset(), tmp_path / "app_export", "labels")
    assert len(list((tmp_path / "app_export").rglob("a.jpg"))) == 1
    assert run(["dataset", "convert", str(proj.path), str(tmp_path / "cli"), "--to", "labels"]) == 2
    assert "--allow-outside-root" in capsys.readouterr().err
    assert run(["dataset", "convert", str(proj.path), str(tmp_path / "cli"), "--to", "labels",
                "--allow-outside-root"]) == 0
