"""CPM Studio desktop app: live pose viewer on cameras, videos, images and image folders (PySide6, pyqtgraph)."""
