"""Shared test set-up: offscreen Qt, quiet TensorFlow, small model specs that run the real network fast."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402

from cpm_core.spec import ModelSpec  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture
def tiny_spec() -> ModelSpec:
    """A real CPM at a size that runs in milliseconds: 64 px input, 2 stages, eighth width, 21 joints."""
    return ModelSpec(name="tiny", input_size=64, stages=2, num_joints=21, stride=8, trunk="hand", width=0.125)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same Python, NumPy and TensorFlow seeds: a failure reproduces.

    After the test, Python's garbage is collected here, in the main thread. Otherwise the windows and menus of
    finished tests wait for a collection that may start in a capture or inference thread of a later test; PySide
    then hands their deletion to the main thread, which deleted a QMenu there while holding the GIL and waited
    for a Qt lock forever (one full run hung in tests/test_viewer_defects.py, 2026-12-02, gdb: QObject::~QObject
    under Shiboken::BindingManager::runDeletionInMainThread, the capture and inference threads waiting for the
    GIL). Tests with `qtbot` now also collect only in the GUI thread, as the app does (`_gui_thread_gc`); this
    collection stays for tests that make Qt objects without it."""
    import gc

    import keras

    keras.utils.set_random_seed(1234)
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def _gui_thread_gc(request):
    """A test with Qt widgets collects garbage as the app does (`app.gui_gc`): only in the GUI thread."""
    if "qtbot" not in request.fixturenames or request.node.get_closest_marker("own_gc"):
        yield
        return
    request.getfixturevalue("qapp")
    from app.gui_gc import GuiThreadCollector

    collector = GuiThreadCollector()
    yield
    collector.stop()


@pytest.fixture(scope="module")
def estimator():
    """A real tiny PoseEstimator for the app tests (module-scoped: tracing it once is enough)."""
    from app_support import tiny_estimator

    return tiny_estimator()


@pytest.fixture
def window(qtbot, tmp_path, estimator):
    """The real main window on the tiny estimator, with settings in a temporary file; closed and checked after."""
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    w = MainWindow(estimator, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat),
                   quiet=True)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()
    assert not w.worker.isRunning()
