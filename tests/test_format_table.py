"""One table of dataset formats (cpm_core/dataset/formats.py): the CLI's choices, the Annotate tab's export list
and the Train panel's format choice all come from it, so a format added to the table shows up in all three, and
read_dataset / write_dataset dispatch through it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cpm_core.dataset import formats
from cpm_core.dataset.formats import (
    FORMAT_TABLE,
    FORMATS,
    READ_ONLY_FORMATS,
    DatasetFormat,
    dataset_format,
    open_filter,
    read_dataset,
    readable_formats,
    writable_formats,
    write_dataset,
)
from cpm_core.dataset.model import Dataset
from cpm_core.skeleton import HAND_21


def _read_toy(path, strict, skeleton, order) -> Dataset:
    return Dataset(skeleton=skeleton or HAND_21, samples=[], root=Path(path).parent)


def _write_toy(dataset, path, **options) -> None:
    Path(path).write_text(json.dumps({"samples": len(dataset.samples), **options}))


TOY = DatasetFormat("toy", "Toy points", folder=False, suffixes=(".toy",), reader=_read_toy, writer=_write_toy)


@pytest.fixture
def toy_format(monkeypatch):
    monkeypatch.setitem(FORMAT_TABLE, "toy", TOY)
    return TOY


def _cli_choices() -> dict[str, list[str]]:
    """The `cpm dataset convert` parser's --to and --from choices, built as `cpm` builds it."""
    from cpm_core.dataset.commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    dataset = next(a for a in parser._subparsers._group_actions[0].choices.values())
    convert = dataset._subparsers._group_actions[0].choices["convert"]
    return {opt: next(a.choices for a in convert._actions if opt in a.option_strings) for opt in ("--to", "--from")}


def _export_choices(monkeypatch) -> list[str]:
    """The formats the Annotate tab's Export dialog offers."""
    from app.annotate import project_files

    offered: list[list[str]] = []

    def get_item(_parent, _title, _label, items, *_args):
        offered.append(list(items))
        return items[0], False  # cancelled: nothing is written

    monkeypatch.setattr(project_files.QInputDialog, "getItem", staticmethod(get_item))

    class Workspace(project_files.ProjectFilesMixin):
        project = object()

        def _error(self, message: str) -> None:
            raise AssertionError(message)

    Workspace().export_dialog()
    return offered[0]


def _train_panel_choices(qtbot) -> list[str]:
    from app.panels import TrainPanel

    panel = TrainPanel()
    qtbot.addWidget(panel)
    return [panel.format_combo.itemData(i) for i in range(panel.format_combo.count())]


def test_every_list_is_the_tables(qtbot, monkeypatch):
    assert list(FORMAT_TABLE) == ["coco", "labels", "tfrecord", "port-tfrecord", "cmu-hand", "project"]
    assert FORMATS == ("coco", "labels", "tfrecord", "port-tfrecord", "cmu-hand") and READ_ONLY_FORMATS == ("project",)
    choices = _cli_choices()
    assert choices["--to"] == writable_formats() == list(FORMATS)
    assert choices["--from"] == readable_formats() == [*FORMATS, *READ_ONLY_FORMATS]
    assert _export_choices(monkeypatch) == writable_formats()
    assert _train_panel_choices(qtbot) == ["auto", *readable_formats()]


def test_a_format_added_to_the_table_shows_up_everywhere(qtbot, monkeypatch, toy_format, tmp_path):
    assert "toy" in _cli_choices()["--to"] and "toy" in _cli_choices()["--from"]
    assert "toy" in _export_choices(monkeypatch)
    assert "toy" in _train_panel_choices(qtbot)
    assert "*.toy" in open_filter()
    # reading and writing dispatch through the table
    ds = read_dataset(tmp_path / "a.toy", "toy")
    assert ds.samples == []
    write_dataset(ds, tmp_path / "b.toy", "toy", size=3)
    assert json.loads((tmp_path / "b.toy").read_text()) == {"samples": 0, "size": 3}


def test_the_train_panel_picks_a_file_format_with_its_filter(qtbot, monkeypatch, toy_format, tmp_path):
    from app.panels import train_panel

    panel = train_panel.TrainPanel()
    qtbot.addWidget(panel)
    filters: list[str] = []

    def get_open(_parent, _caption, _dir, filt, *_args):
        filters.append(filt)
        return "", ""

    monkeypatch.setattr(train_panel.QFileDialog, "getOpenFileName", staticmethod(get_open))
    panel.format_combo.setCurrentIndex(panel.format_combo.findData("toy"))
    panel._pick_data(panel.dataset_edit)
    assert filters == ["Toy points (*.toy);;All files (*)"]
    data = tmp_path / "a.toy"
    data.write_text("")
    assert train_panel.check_dataset(str(data), "toy") == ""
    assert "is a file" in train_panel.check_dataset(str(tmp_path), "toy")


def test_the_table_describes_each_format():
    assert dataset_format("coco").dialog_filter == "COCO keypoints (*.json)"
    assert dataset_format("tfrecord").default_suffix == ".tfrecord" and not dataset_format("tfrecord").folder
    assert dataset_format("labels").folder and dataset_format("labels").dialog_filter == ""
    assert dataset_format("cmu-hand").folder and dataset_format("cmu-hand").writable
    project = dataset_format("project")
    assert project.readable and not project.writable and project.dialog_filter.endswith("(*.cpmproj.json)")
    assert open_filter() == "Datasets (*.json labels.txt *.tfrecord *.tfrecords *.record *.tfr);;All files (*)"
    with pytest.raises(ValueError, match="unknown dataset format 'nope'"):
        dataset_format("nope")
    with pytest.raises(ValueError, match="cannot be written"):
        write_dataset(Dataset(skeleton=HAND_21, samples=[]), "x.cpmproj.json", "project")
    # which image files each writer needs is the table's, not a list in write_dataset
    assert {f.name: f.needs_images for f in formats.FORMAT_TABLE.values()} == {
        "coco": "", "labels": "labelled", "tfrecord": "all", "port-tfrecord": "labelled", "cmu-hand": "labelled",
        "project": ""}
