"""The Annotate tab's frame navigation, display and edits (place, drag, cycle, remove, box, confirm).

A mixin of `AnnotationWorkspace` (app/annotate/workspace.py). Every edit becomes a FrameEditCommand pushed on the
workspace's one undo stack (`_push`); the stack calls `_on_frame_changed` on push, undo and redo, which shows the
frame touched and autosaves, except for the moves of a drag in progress, saved on release.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from app.annotate.canvas import box_corners
from app.annotate.commands import FrameEditCommand
from cpm_core.dataset.model import ABSENT
from cpm_core.dataset.project import FrameState


class FrameEditingMixin:
    """Navigation, display and undoable edits of the current frame for `AnnotationWorkspace`."""

    # ------------------------------------------------------------------ navigation and display
    def go_to(self, index: int, force: bool = False) -> None:
        if self.project is None or not len(self.project):
            return
        index = max(0, min(int(index), len(self.project) - 1))
        if index == self.index and not force:
            return
        self.index = index
        self._show_image()
        self.selected = self._next_unplaced(0)
        self._refresh_frame()
        self.panel.frames.select(index)

    def step(self, delta: int) -> None:
        self.go_to(self.index + delta)

    def next_unlabelled(self) -> None:
        if self.project is None:
            return
        nxt = self.project.next_unlabelled(self.index)
        if nxt is None:
            self._status("Every frame is labelled")
        else:
            self.go_to(nxt)

    def frame_confidence(self, index: int) -> float | None:
        """The mean model confidence of frame `index`'s joints that are still unconfirmed predictions (None: no
        such joint, or predicted in an earlier session)."""
        conf = self.confidence.get(index)
        if conf is None or self.project is None:
            return None
        st = self.project.state(index)
        if st.labelled or not st.predicted.any():
            return None
        return float(np.mean(conf[st.predicted]))

    def next_least_confident(self) -> None:
        """Go to the unconfirmed prediction the model was least sure of; pressed again on that frame, to the next
        least sure one (frames in rising order of confidence, wrapping)."""
        if self.project is None:
            return
        scored = sorted((c, i) for i in self.confidence if (c := self.frame_confidence(i)) is not None)
        if not scored:
            self._status("No unconfirmed prediction with a confidence: predict frames first (P, Shift+P)")
            return
        order = [i for _, i in scored]
        nxt = order[(order.index(self.index) + 1) % len(order)] if self.index in order else order[0]
        self.go_to(nxt)
        self._status(f"Frame {nxt + 1}: mean confidence {self.frame_confidence(nxt):.2f} "
                     f"({order.index(nxt) + 1} of {len(order)} unconfirmed, least confident first)")

    def _show_image(self) -> None:
        path = self.project.image_path(self.index)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            f = self.project.frames[self.index]
            rgb = np.full((f.height or 480, f.width or 640, 3), 60, np.uint8)
            self._error(f"{path}: cannot read the image")
        else:
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        self.canvas.set_image(rgb)

    def _refresh_frame(self) -> None:
        if self.project is None:
            return
        st = self.project.state(self.index)
        conf = self.confidence.get(self.index)
        self.canvas.set_annotation(self.project.skeleton, st, self.selected, conf)
        self.panel.joints.show_state(self.project.skeleton.joints, st, self.selected, conf)
        self.panel.frames.update_frame(self.project, self.index, self.frame_confidence(self.index))
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        p = self.project
        if p is None:
            return
        c = p.counts()
        self.panel.title.setText(f"<b>{p.path.name}</b> · frame {self.index + 1} / {len(p)}<br>"
                                 f"{Path(p.frames[self.index].image).name}")
        self.panel.title.setToolTip(str(p.image_path(self.index)))
        self.panel.counts.setText(f"{c['labelled']} of {c['frames']} frames labelled · {c['predicted']} with "
                                  f"unconfirmed predictions · skeleton {p.skeleton.name}")

    def _refresh_all(self) -> None:
        has = self.project is not None
        for b in (self.panel.predict_button, self.panel.predict_all_button, self.panel.confirm_button,
                  self.panel.next_button, self.panel.least_button, self.panel.export_button,
                  self.panel.suggest_button, self.panel.check_button):
            b.setEnabled(has)
        self.panel.undo_button.setEnabled(self.undo_stack.canUndo())
        self.panel.redo_button.setEnabled(self.undo_stack.canRedo())

    def _on_frame_changed(self, index: int) -> None:
        """Called by every command's redo/undo: show the frame an undo/redo touched, and autosave."""
        if index != self.index and not self._pushing:
            self.go_to(index)
        if index == self.index:
            self._refresh_frame()
        else:  # a background prediction for another frame
            self.panel.frames.update_frame(self.project, index, self.frame_confidence(index))
            self._refresh_counts()
        if not self._dragging:
            self._save()

    # ------------------------------------------------------------------ edits
    def _push(self, after: FrameState, text: str, drag: tuple | None = None, index: int | None = None) -> None:
        index = self.index if index is None else index
        if self.project is None or after.same_as(self.project.state(index)):
            return
        self._pushing = True
        try:
            self.undo_stack.push(FrameEditCommand(self.project, index, after, text, self._on_frame_changed, drag))
        finally:
            self._pushing = False
        self._refresh_all()

    def _next_unplaced(self, start: int) -> int:
        """The first joint without a position at or after `start` in skeleton order (wrapping), else `start`."""
        st = self.project.state(self.index)
        n = len(st.visibility)
        for k in range(n):
            j = (start + k) % n
            if st.visibility[j] == ABSENT:
                return j
        return min(start, n - 1)

    def select_joint(self, joint: int) -> None:
        if self.project is None or not 0 <= joint < self.project.num_joints:
            return
        self.selected = joint
        self._refresh_frame()

    def place_at(self, x: float, y: float) -> None:
        """Place the selected joint if unplaced, else the next unplaced one; then select the next unplaced."""
        if self.project is None:
            return
        st = self.project.state(self.index)
        if not (st.visibility == ABSENT).any():
            self._status("All joints are placed: drag one to move it, Delete removes the selected one")
            return
        joint = self._next_unplaced(self.selected)
        name = self.project.skeleton.joints[joint]
        self.selected = joint
        self._push(self.project.placed_state(self.index, joint, (x, y)), f"place {name}")
        self.selected = self._next_unplaced(joint)
        self._refresh_frame()

    def _on_joint_dragged(self, joint: int, x: float, y: float, finished: bool) -> None:
        if self.project is None:
            return
        if not self._dragging:
            self._dragging = True
            self._drag_serial += 1
            self.selected = joint
        name = self.project.skeleton.joints[joint]
        self._push(self.project.placed_state(self.index, joint, (x, y)), f"move {name}",
                   drag=("joint", self.index, joint, self._drag_serial))
        if finished:
            self._dragging = False
            self._save()

    def _on_corner_dragged(self, corner: int, x: float, y: float, finished: bool) -> None:
        if self.project is None:
            return
        if not self._dragging:
            self._dragging = True
            self._drag_serial += 1
            self._drag_box = box_corners(self.project.state(self.index).bbox)
        fixed = self._drag_box[(corner + 2) % 4]
        box = (min(x, fixed[0]), min(y, fixed[1]), abs(x - fixed[0]), abs(y - fixed[1]))
        self._push(self.project.bbox_state(self.index, box), "edit box", drag=("box", self.index, self._drag_serial))
        if finished:
            self._dragging = False
            self._save()

    def _cycle_joint(self, joint: int) -> None:
        if self.project is None:
            return
        self.selected = joint
        st = self.project.cycled_state(self.index, joint)
        names = {0: "absent", 1: "occluded", 2: "visible"}
        self._push(st, f"{self.project.skeleton.joints[joint]} {names[int(st.visibility[joint])]}")

    def cycle_selected(self) -> None:
        if self.project is not None:
            st = self.project.state(self.index)
            if st.visibility[self.selected] or st.keypoints[self.selected].any():
                self._cycle_joint(self.selected)

    def remove_selected(self) -> None:
        if self.project is None:
            return
        j = self.selected
        if self.project.state(self.index).visibility[j] != ABSENT:
            self._push(self.project.visibility_state(self.index, j, ABSENT),
                       f"remove {self.project.skeleton.joints[j]}")

    def reset_box(self) -> None:
        if self.project is not None:
            self._push(self.project.bbox_state(self.index, None), "box follows joints")

    def confirm(self) -> None:
        """Accept the predicted joints and mark the frame labelled (an empty frame too: nothing to label there)."""
        if self.project is None:
            return
        self._push(self.project.confirmed_state(self.index), "confirm frame")
