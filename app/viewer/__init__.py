"""The live viewer, split by job. `settings` (no Qt) is the viewer's state with change notifications; every other
module here is Qt and subscribes to it: `controls` (the Controls dock's form), `display` (the four views and paint
coalescing), `bindings` (settings -> live pipeline and capture), `playback` (the transport toolbar), `source_menus`
(open dialogs, recent files, cameras), `model_loading` (loading weights, the model card and badge), `recording`
(snapshot and record actions), `docks` (dock and window sizing helpers), `drop` (drag and drop).
`app/main_window.py` only composes them.

This package's `__init__` imports nothing, so `app.viewer.settings` loads without Qt.
"""
