"""The Annotate tab's project files: creating (from a video, a folder, a dataset), opening, autosaving, exporting.

A mixin of `AnnotationWorkspace` (app/annotate/workspace.py), split out so each part of the tab reads on its own;
it uses the workspace's state (`project`, `panel`, the undo stack) and its messages (`_status`, `_error`). Slow
work (extracting a video's frames, writing TFRecords) runs in `run_in_worker` when asked with `background`, so
the window stays responsive.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
)

from app.background import run_in_worker
from cpm_core.dataset.formats import dataset_format, open_filter, read_dataset, writable_formats, write_dataset
from cpm_core.dataset.frames import METHODS
from cpm_core.dataset.project import PROJECT_SUFFIX, AnnotationProject, ProjectError
from cpm_core.skeleton import HAND_21, Skeleton
from cpm_core.sources import VIDEO_SUFFIXES


class ProjectFilesMixin:
    """Project lifecycle for `AnnotationWorkspace`: new / open / save / export and their dialogs."""

    # ------------------------------------------------------------------ projects
    def set_project(self, project: AnnotationProject, save: bool = True) -> None:
        """Show `project` (saving it first, so a new project exists on disk before the first edit)."""
        self.cancel_prediction()
        self.suggester.cancel()
        self.undo_stack.clear()
        self.project = project
        self.index = 0
        self.selected = 0
        self._image_cache = None
        self.confidence = {}
        if save:
            self._save()
        self.panel.frames.fill(project)
        self.panel.suggestions.fill(project)
        self.panel.checks.clear()
        self.go_to(0, force=True)
        self._refresh_all()  # the buttons were left disabled until the first edit
        self.projectChanged.emit(str(project.path))

    def open_project(self, path: str | Path) -> bool:
        try:
            project = AnnotationProject.load(path)
        except ProjectError as exc:
            self._error(str(exc))
            return False
        self.set_project(project, save=False)
        self._status(f"Opened annotation project {path}")
        self.reactivate()
        return True

    def _default_skeleton(self) -> Skeleton:
        est = self.estimator_provider()
        return est.card.skeleton if est is not None else HAND_21

    def new_from_video(self, video: str | Path, project_path: str | Path, count: int = 20,
                       method: str = "uniform", background: bool = False) -> bool:
        """A project of `count` frames of `video`. Choosing and extracting the frames decodes the whole video
        (twice for some methods): with `background` (the File menu's way) that runs in a worker thread
        (`run_in_worker`), the window stays responsive and the project opens when it is ready; True then means
        started. Without it (scripts, tests) it runs here and returns whether the project opened."""
        if background:
            skeleton = self._default_skeleton()
            self._status(f"Extracting {count} frames from {Path(video).name} …")
            self.background_job = run_in_worker(
                lambda _control: AnnotationProject.from_video(project_path, video, count, method, skeleton),
                lambda project: self._adopt(project, f"{len(project)} frames from {Path(video).name} ({method})"),
                lambda exc: self._error(f"cannot make a project from {video}: {exc}"), parent=self)
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            project = AnnotationProject.from_video(project_path, video, count, method, self._default_skeleton())
        except (OSError, ValueError) as exc:
            self._error(f"cannot make a project from {video}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        return self._adopt(project, f"{len(project)} frames from {Path(video).name} ({method})")

    def new_from_folder(self, folder: str | Path, project_path: str | Path) -> bool:
        try:
            project = AnnotationProject.from_folder(project_path, folder, self._default_skeleton())
        except (OSError, ValueError) as exc:
            self._error(f"cannot make a project from {folder}: {exc}")
            return False
        return self._adopt(project, f"{len(project)} images from {folder}")

    def new_from_dataset(self, dataset_path: str | Path, project_path: str | Path, fmt: str | None = None) -> bool:
        try:
            ds = read_dataset(dataset_path, fmt=fmt)
            project = AnnotationProject.from_dataset(project_path, ds)
        except (OSError, ValueError, KeyError) as exc:
            self._error(f"cannot import {dataset_path}: {exc}")
            return False
        skipped = f"; {len(ds.issues)} malformed records skipped" if ds.issues else ""
        return self._adopt(project, f"{len(project)} images imported from {Path(dataset_path).name}{skipped}")

    def _adopt(self, project: AnnotationProject, what: str) -> bool:
        try:
            self.set_project(project)
        except OSError as exc:
            self._error(f"cannot save the project to {project.path}: {exc}")
            return False
        self._status(f"New annotation project {project.path}: {what}")
        self.reactivate()
        return True

    # ------------------------------------------------------------------ dialogs (thin wrappers over the above)
    def _project_path_dialog(self, suggestion: Path) -> str:
        path, _ = QFileDialog.getSaveFileName(self, "Save annotation project as", str(suggestion),
                                              f"Annotation project (*{PROJECT_SUFFIX})")
        if path and not path.endswith(PROJECT_SUFFIX):
            path += PROJECT_SUFFIX
        return path

    def new_from_video_dialog(self) -> None:
        pattern = " ".join(f"*{s}" for s in sorted(VIDEO_SUFFIXES))
        video, _ = QFileDialog.getOpenFileName(self, "Extract frames from video", "", f"Videos ({pattern})")
        if not video:
            return
        count, ok = QInputDialog.getInt(self, "Extract frames", "Number of frames to label:", 20, 1, 10000)
        if not ok:
            return
        method, ok = QInputDialog.getItem(self, "Extract frames", "Choose frames:", list(METHODS), 0, False)
        if not ok:
            return
        path = self._project_path_dialog(Path(video).with_suffix(PROJECT_SUFFIX))
        if path:
            self.new_from_video(video, path, count, method, background=True)

    def new_from_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Label the images of a folder")
        if folder:
            path = self._project_path_dialog(Path(folder) / f"{Path(folder).name}{PROJECT_SUFFIX}")
            if path:
                self.new_from_folder(folder, path)

    def new_from_dataset_dialog(self) -> None:
        src, _ = QFileDialog.getOpenFileName(self, "Import dataset (COCO .json, labels.txt, .tfrecord, CMU .json)",
                                             "", open_filter("Datasets"))
        if not src:
            return
        fmt = None
        if Path(src).name == "labels.txt":  # the labels format is a folder of <person>/labels.txt
            src, fmt = str(Path(src).parent.parent), "labels"
        path = self._project_path_dialog(Path(src).with_name(Path(src).stem + PROJECT_SUFFIX))
        if path:
            self.new_from_dataset(src, path, fmt)

    def open_project_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open annotation project", "",
                                              f"Annotation project (*{PROJECT_SUFFIX});;JSON (*.json)")
        if path:
            self.open_project(path)

    def export_dialog(self) -> None:
        if self.project is None:
            self._error("no annotation project open: nothing to export")
            return
        # The formats, and whether each is a file or a folder, come from cpm_core's table of dataset formats.
        fmt, ok = QInputDialog.getItem(self, "Export dataset", "Format:", writable_formats(), 0, False)
        if not ok:
            return
        entry = dataset_format(fmt)
        base = self.project.folder / f"{self.project.path.name.removesuffix(PROJECT_SUFFIX)}_{fmt}"
        if not entry.folder:
            path, _ = QFileDialog.getSaveFileName(self, f"Export as {fmt}", str(base) + entry.default_suffix)
        else:
            path = QFileDialog.getExistingDirectory(self, f"Export as {fmt} into folder", str(self.project.folder))
        if path:
            self.export(path, fmt, background=True)
        self.reactivate()

    # ------------------------------------------------------------------ export
    def export(self, path: str | Path, fmt: str, only_labelled: bool = True, background: bool = False) -> bool:
        """Write the labelled frames as `fmt` via write_dataset; any failure becomes one clear message. With
        `background` (the dialog's way; TFRecords take a while) the writing runs in a worker thread and True means
        started; the message comes when it is done."""
        if self.project is None:
            self._error("no annotation project open: nothing to export")
            return False
        ds = self.project.to_dataset(only_labelled=only_labelled)
        if not ds.samples:
            self._error("nothing to export: no frame is labelled yet (confirm frames with Enter)")
            return False
        left = len(self.project) - len(ds.samples)
        done = (f"Exported {len(ds.samples)} labelled frames as {fmt} to {path}"
                + (f" ({left} unlabelled frames left out)" if left else ""))
        if background:
            self._status(f"Exporting {len(ds.samples)} labelled frames as {fmt} …")
            self.background_job = run_in_worker(
                lambda _control: write_dataset(ds, path, fmt), lambda _result: self._status(done),
                lambda exc: self._error(f"export to {fmt} failed: {path}: {exc}"), parent=self)
            return True
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            write_dataset(ds, path, fmt)
        except Exception as exc:  # noqa: BLE001 - writers raise OSError, ValueError, TF errors: all become a message
            self._error(f"export to {fmt} failed: {path}: {exc}")
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self._status(done)
        return True

    # ------------------------------------------------------------------ saving
    def _save(self) -> None:
        if self.project is None:
            return
        try:
            self.project.save()
            self.saves += 1
        except OSError as exc:
            self._error(f"autosave failed: {self.project.path}: {exc}")
