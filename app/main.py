"""`cpm-studio`: start the live pose viewer, or render N frames to a screenshot and quit (CI, docs, bug reports).

The source is checked before TensorFlow is imported, so a bad path fails fast with one line on stderr and
exit status 1 (2 for a model that cannot be loaded or no display, 3 for a run that timed out). Without a display
(Linux, no DISPLAY / WAYLAND_DISPLAY, QT_QPA_PLATFORM unset) it says so in one line and exits 2 instead of letting
Qt abort. TensorFlow's and Qt's start-up noise stays off stderr unless --verbose or CPM_VERBOSE=1 asks for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_SOURCE, EXIT_MODEL, EXIT_TIMEOUT = 1, 2, 3
EXIT_NO_DISPLAY = 2  # like a usage error: nothing was started
BATCH_FRAMES = 30  # --frames' default for moving sources


def batch_frames(requested: int | None, source_kind: str | None) -> int:
    """How many results a scripted run waits for. A still image yields one result and then nothing more (it
    never "ends" the way a clip does), so waiting for 30 ran into the timeout; a folder plays as a slow slide
    show, so its first pose is the one a screenshot wants unless --frames says otherwise."""
    if requested is not None:
        return requested
    return 1 if source_kind in ("image", "folder") else BATCH_FRAMES


def no_display() -> bool:
    """True on Linux with neither an X nor a Wayland display and no QT_QPA_PLATFORM chosen: Qt's default xcb plugin
    would abort the process (exit 134, a page of plugin messages) where one line can say what to do."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cpm-studio", description="Live 2D pose estimation with Convolutional Pose "
                                "Machines: cameras, videos, images and image folders.")
    p.add_argument("--source", help="video, image, image folder, or camera:N (default: the bundled sample)")
    p.add_argument("--model", help="model folder, card.json, port .pkl or TF checkpoint (default: embedded hand)")
    p.add_argument("--view", choices=("multi", "single", "joints", "tracker"), default="multi")
    p.add_argument("--frames", type=int, default=None, help="render this many frames, then screenshot / quit "
                   f"(default: {BATCH_FRAMES} for a video or camera; for an image or folder, once the first pose "
                   "is shown)")
    p.add_argument("--screenshot", help="save a PNG of the whole window after --frames frames")
    p.add_argument("--quit", action="store_true", help="exit after the frames are rendered (no dialogs)")
    p.add_argument("--record", metavar="OUT.mp4", help="record the annotated video and the keypoints (OUT.mp4, "
                   ".json, .csv) from the first frame, as File > Record (Ctrl+R) does: every source frame, real time "
                   "off; with --frames N, the first N frames")
    p.add_argument("--tracking", action="store_true", help="start with the self-tracking crop on")
    p.add_argument("--detect", action="store_true", help="start with subject detection on (several subjects, "
                   "anywhere in the frame, each with its own id)")
    p.add_argument("--detector", choices=("palm", "pose", "hog"), default=None,
                   help="with --detect: override the detector (default: palm for hand models, pose for body models)")
    p.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds with --quit")
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's and Qt's start-up and log lines (also "
                   "CPM_VERBOSE=1)")
    args = p.parse_args(argv)
    if args.frames is not None and args.frames < 1:
        p.error("--frames must be at least 1")
    return args


# Qt messages that are expected and say nothing to a user: the offscreen platform (scripted screenshots, CI) cannot
# pass size hints to a window manager it does not have.
QT_NOISE = ("This plugin does not support propagateSizeHints()",)


def install_qt_message_filter() -> None:
    """Drop Qt's known-harmless messages (`QT_NOISE`) and print the rest as Qt would, one line each on stderr."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        if message in QT_NOISE:
            return
        prefix = {QtMsgType.QtWarningMsg: "Warning: ", QtMsgType.QtCriticalMsg: "Critical: ",
                  QtMsgType.QtFatalMsg: "Fatal: "}.get(kind, "")
        print(f"{prefix}{message}", file=sys.stderr)

    qInstallMessageHandler(handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from training.cli import quiet_native_start, verbose_requested

    verbose = args.verbose or verbose_requested([])
    if no_display():
        print("cpm-studio: no display (DISPLAY and WAYLAND_DISPLAY are unset); for scripted screenshots run with "
              "QT_QPA_PLATFORM=offscreen", file=sys.stderr)
        return EXIT_NO_DISPLAY
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our SourceError says it in one line; FFmpeg's is noise

    from app.frame_sources import open_source
    from app.samples import default_sample
    from cpm_core.sources import SourceError

    source = args.source or default_sample()
    source_fps = None
    if source is not None:
        try:
            probe = open_source(source)
        except SourceError as exc:
            print(f"cpm-studio: {exc}", file=sys.stderr)
            return EXIT_SOURCE
        source_fps = probe.info.fps
        probe.close()

    # TensorFlow's C++ start-up lines (CUDA probe, oneDNN, TFLite's XNNPACK notice) are kept off stderr; errors stay.
    quiet_native_start(verbose)
    if not verbose:
        install_qt_message_filter()
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui_gc import GuiThreadCollector
    from app.main_window import MainWindow
    from cpm_core.estimator import PoseEstimator
    from cpm_core.runtime import card_gflops, configure_pipeline_threads
    from cpm_core.weights import default_model_path

    # Before the model is built (TensorFlow fixes its pools on first use), sized for the model's cost.
    configure_pipeline_threads(model_gflops=card_gflops(args.model))
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("CPM Studio")
    app.setApplicationName("cpm-studio")
    collector = GuiThreadCollector()  # see app.gui_gc: no Qt object is freed from a worker thread
    try:
        try:
            estimator = PoseEstimator.from_path(args.model) if args.model else PoseEstimator.default()
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one line
            print(f"cpm-studio: cannot load model: {str(exc).splitlines()[0]}", file=sys.stderr)
            return EXIT_MODEL

        window = MainWindow(estimator, quiet=args.quit, model_path=args.model or default_model_path("hand"))
        batch = args.quit or args.screenshot is not None or args.frames is not None
        viewer = window.viewer_settings  # the flags set the viewer's state; its widgets follow
        viewer.view = args.view
        if args.tracking:
            viewer.tracking = True
        if args.detector:
            viewer.detector = args.detector
        if args.detect:
            viewer.detect = True
        if batch:
            viewer.loop = False  # a short clip ends instead of looping forever
        if args.record and not window.recording.record_to(args.record, fps=source_fps, frames=args.frames):
            print(f"cpm-studio: cannot record to {args.record}: {window.last_error}", file=sys.stderr)
            if args.quit:
                window.shutdown()
                return EXIT_SOURCE
        if source is not None and not window.open_source(source, interactive=not args.quit):
            if args.quit:
                window.shutdown()
                return EXIT_SOURCE
        window.show()

        status = {"rc": 0, "done": False}
        if batch:
            frames = batch_frames(args.frames, window.source_info.kind if window.source_info else None)

            def finish() -> None:
                if status["done"]:
                    return
                status["done"] = True
                if args.record:
                    rec = window.stop_recording()
                    if rec is not None:
                        print(f"cpm-studio: recorded {rec.frames_written} frames to {rec.video_path} (+ .json, .csv)",
                              file=sys.stderr)
                        if not rec.video_path.exists():  # not finished (a full disk): the message said where it stays
                            status["rc"] = 1
                if args.screenshot:
                    window.update_readout()
                    QApplication.processEvents()
                    Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                    if not window.grab().save(args.screenshot, "PNG"):
                        print(f"cpm-studio: cannot write {args.screenshot}", file=sys.stderr)
                        status["rc"] = 1
                if args.quit:
                    window.close()
                    app.exit(status["rc"])

            def check() -> None:
                if window.delivered >= frames and window.displayed > 0:
                    QTimer.singleShot(100, finish)  # let the last frame paint
                elif window.source_ended and window.worker.idle() and window.displayed > 0:
                    QTimer.singleShot(300, finish)  # the source had fewer frames

            def timeout() -> None:
                if not status["done"] and args.quit:
                    print(f"cpm-studio: timed out after {args.timeout:.0f}s with {window.delivered} of {frames} frames "
                          f"shown ({window.last_error or 'no error reported'})", file=sys.stderr)
                    status["done"] = True
                    window.close()
                    app.exit(EXIT_TIMEOUT)

            window.frameDisplayed.connect(lambda _n: check())
            poll = QTimer(window)
            poll.timeout.connect(check)
            poll.start(100)
            QTimer.singleShot(int(args.timeout * 1000), timeout)

        rc = app.exec()
        window.shutdown()
        return rc or status["rc"]
    finally:
        collector.stop()


if __name__ == "__main__":
    sys.exit(main())
