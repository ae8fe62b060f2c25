"""Annotate tab: the "Check labels" list, `cpm dataset check` on the open project with a jump to each flag's frame.

The check reads geometry only (milliseconds for a project), so it runs on the GUI thread when asked. Every frame
of the project becomes one sample (`to_dataset(only_labelled=False)`), so a flag's sample index is the frame to
show; frames with unconfirmed predictions are checked too, since they are about to become labels.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from cpm_core.dataset.check import Flag, check_dataset, dataset_stats

KIND_MARKS = {"swap": "⇄", "joint": "✕", "box": "▭", "duplicate": "⧉"}


class CheckList(QListWidget):
    """One row per flag, most suspicious first; clicking a row asks for its frame (and joint)."""

    frameRequested = Signal(int, int)  # project frame index, the first flagged joint (-1: none)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.flags: list[Flag] = []
        self.setWordWrap(True)
        self.setToolTip("Labels that look wrong (Check labels); click one to go to its frame")
        self.itemClicked.connect(self._clicked)

    def _clicked(self, item: QListWidgetItem) -> None:
        flag = self.flags[int(item.data(Qt.ItemDataRole.UserRole))]
        self.frameRequested.emit(flag.sample_index, flag.joints[0] if flag.joints else -1)

    def show_flags(self, flags: list[Flag], frame_names: list[str], note: str = "") -> None:
        self.clear()
        self.flags = list(flags)
        if not flags:
            item = QListWidgetItem(f"No label looks wrong{note}")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.addItem(item)
            return
        for k, f in enumerate(flags):
            name = frame_names[f.sample_index] if f.sample_index < len(frame_names) else f.image
            item = QListWidgetItem(f"{KIND_MARKS.get(f.kind, '?')} {f.score:5.1f}  frame {f.sample_index + 1} "
                                   f"({name}): {f.reason}")
            item.setData(Qt.ItemDataRole.UserRole, k)
            item.setToolTip(f"{f.kind} · score {f.score:.2f} (1 = just flagged) · annotation {f.annotation_id}\n"
                            f"{f.reason}")
            self.addItem(item)


class LabelChecker:
    """The "Check labels" action of an `AnnotationWorkspace`."""

    def __init__(self, workspace):
        self.ws = workspace
        self.flags: list[Flag] = []
        workspace.panel.checks.frameRequested.connect(self._jump)

    def run(self) -> list[Flag]:
        """Check the open project's labels and list the flags; returns them."""
        ws = self.ws
        if ws.project is None:
            ws._error("no annotation project open: nothing to check")
            return []
        ds = ws.project.to_dataset(only_labelled=False)
        try:
            stats = dataset_stats(ds)
            self.flags = check_dataset(ds, stats)
        except ValueError as exc:
            ws._error(f"cannot check the labels: {exc}")
            return []
        labelled = ds.num_instances
        names = [f.image.rsplit("/", 1)[-1] for f in ws.project.frames]
        against = "their own proportions" if stats.source == "dataset" else "the built-in hand proportions"
        ws.panel.checks.show_flags(self.flags, names, f" ({labelled} labelled frames, against {against})")
        ws.panel.loop_tabs.setCurrentWidget(ws.panel.checks)
        ws._status(f"Checked {labelled} labelled frames against {against}: {len(self.flags)} flagged"
                   + ("; click one to go to its frame" if self.flags else ""))
        return self.flags

    def _jump(self, frame: int, joint: int) -> None:
        ws = self.ws
        ws.go_to(frame)
        if joint >= 0:
            ws.select_joint(joint)
