"""Undo commands for the annotation canvas: every edit is (frame, state before, state after).

Because edits are pure functions of a frame's state (`cpm_core.dataset.project`), one command class covers
placing, moving, visibility, boxes, predictions and confirmation. A drag pushes many moves of one joint; they
merge into one command (same frame, same joint, same drag), so one Ctrl+Z undoes the whole drag.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QUndoCommand

from cpm_core.dataset.project import AnnotationProject, FrameState

MERGE_DRAG = 1001


class FrameEditCommand(QUndoCommand):
    """Replace one frame's state; undo puts the old one back. `drag` (an id) makes consecutive moves merge."""

    def __init__(self, project: AnnotationProject, index: int, after: FrameState, text: str,
                 changed: Callable[[int], None], drag: tuple | None = None):
        super().__init__(text)
        self.project = project
        self.index = index
        self.before = project.state(index)
        self.after = after
        self.changed = changed
        self.drag = drag

    def id(self) -> int:  # noqa: A003 - Qt override
        return MERGE_DRAG if self.drag is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:  # noqa: N802 - Qt override
        if not isinstance(other, FrameEditCommand) or other.drag is None or other.drag != self.drag:
            return False
        if other.index != self.index:
            return False
        self.after = other.after
        return True

    def redo(self) -> None:
        self.project.set_state(self.index, self.after)
        self.changed(self.index)

    def undo(self) -> None:
        self.project.set_state(self.index, self.before)
        self.changed(self.index)
