"""Benchmark: frames/s the GUI pipeline shows vs the bare model on the same video, and GUI-thread stalls.

    PYTHONPATH=. python bench/pipeline.py [--video PATH] [--model PATH] [--frames N] [--view multi]

Rows:
- bare model: one thread reads each frame and runs PoseEstimator.predict (what `cpm infer` would do), once before
  and once after the first GUI row; the ratios use their mean (on a shared VM the machine's speed drifts).
- GUI, every frame: the real MainWindow (offscreen), capture and inference threads, the chosen view drawing,
  with the capture waiting for the worker (no drops): frames per second through the whole pipeline to the GUI
  (every result reaches the window and its plots; the view itself is painted with the newest result at most at
  the screen's refresh rate or the video's frame rate, whichever is lower, reported as paints/s).
- GUI, every frame, with the stall heartbeat: the same run again with a 1 ms QTimer heartbeat measuring
  event-loop gaps; p99 and max are the stalls a user would feel. The heartbeat is the bench's instrument, not
  the app's, and on 2 cores its ~1000 wake-ups a second cost the model frames, so the frames/s target is read
  from the row without it and the stall target from this one (both rows are printed).
- GUI, every frame, views draw nothing: the same with the views' drawing switched off, to tell the cost of
  painting from that of the threads around the model (a diagnosis, not a way to use the app).
- GUI, real time: the same at the file's frame rate (drops when the model cannot keep up), with the heartbeat.
Targets: GUI every-frame fps >= 90% of bare fps; p99 stall < 20 ms.

On a slow CPU the default model leaves the GUI a small share of each frame; to see what a fast CPU would ask of
the GUI, bench an untrained model ~15x cheaper than the default (64 px, width 0.125, 0.27 GFLOPs):

    python bench/pipeline.py --make-stress-model /tmp/stress && python bench/pipeline.py --model /tmp/stress
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from machine import describe_machine  # noqa: E402

SHARED_VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "media" / "hand" / "handpose3d_cam0.mp4"


def bare_fps(estimator, video: Path, frames: int) -> float:
    """Decode and predict in one thread, as `cpm infer` does (an upright model follows the hand's angle from
    frame to frame, exactly as the app's worker does)."""
    from cpm_core.orientation import UprightFollower
    from cpm_core.sources import VideoReader

    follower = UprightFollower(estimator)
    follower.warm_up()  # what the app's worker does before the first frame
    with VideoReader(video) as reader:
        follower.predict(reader.read())  # warm
        reader.seek(0)
        follower.reset()
        n = 0
        t0 = time.perf_counter()
        while n < frames and (f := reader.read()) is not None:
            follower.predict(f)
            n += 1
        return n / (time.perf_counter() - t0)


def gui_run(estimator, video: Path, frames: int, view: str, realtime: bool, detect: bool = False,
            paint: bool = True, heartbeat: bool = True) -> dict:
    """One GUI row. `heartbeat`: run the 1 ms QTimer that measures stalls. It is the bench's instrument, not
    part of the app, and on 2 cores it costs the model: ~3% of a core in wake-ups alone, each one pre-empting a
    TensorFlow thread mid-op; so frames/s is measured in a run without it and stalls in a run with it."""
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    settings = QSettings(os.path.join(tempfile.mkdtemp(), "bench.ini"), QSettings.Format.IniFormat)
    win = MainWindow(estimator, settings=settings, quiet=True)
    win.set_view(view)
    win.loop_check.setChecked(False)
    win.set_realtime(realtime)
    win.detect_check.setChecked(detect)  # multi-subject row: detector + one batched CPM call per frame
    if not paint:  # diagnosis row: the whole pipeline with the views drawing nothing
        for v in win.views.values():
            v.show_pose = lambda pose: None
    win.show()
    for _ in range(20):
        app.processEvents()
    deadline = time.perf_counter() + 60
    while not win.worker.idle() and time.perf_counter() < deadline:  # the worker warms its model up first
        app.processEvents()
        time.sleep(0.01)
    beats: list[float] = []
    heart = QTimer()
    heart.setInterval(1)
    heart.timeout.connect(lambda: beats.append(time.perf_counter()))
    state = {"t0": 0.0, "t1": 0.0}
    add = win.plots.add

    def delivered(pose) -> None:  # every result the window takes reaches its plots: time the last one there
        add(pose)
        if win.delivered <= frames:
            state["t1"] = time.perf_counter()

    win.plots.add = delivered

    def check() -> None:
        if win.delivered >= frames or (win.source_ended and win.worker.idle() and win.delivered > 0):
            app.quit()

    poll = QTimer()  # a slow poll: the end time comes from the deliveries themselves
    poll.timeout.connect(check)
    state["t0"] = time.perf_counter()
    win.open_source(video)
    if heartbeat:
        heart.start()
    poll.start(50)
    app.exec()
    heart.stop()
    poll.stop()
    shown, painted, processed, dropped = (min(win.delivered, frames), win.displayed, win.worker.processed,
                                          win.worker.dropped)
    win.close()
    beats_arr = np.asarray(beats)
    if not heartbeat:  # no stalls measured in this run
        gaps = steady = np.full(1, np.nan)
    else:
        gaps = np.diff(beats_arr) * 1e3 if len(beats) > 2 else np.zeros(1)
        steady = gaps[beats_arr[1:] - state["t0"] > 1.0] if len(beats) > 2 else gaps  # after the first second
        steady = steady if steady.size else gaps
    elapsed = state["t1"] - state["t0"]
    return {"fps": shown / elapsed, "shown": shown, "painted_fps": painted / elapsed, "processed": processed,
            "dropped": dropped,
            "p99": float(np.percentile(gaps, 99)), "p99_steady": float(np.percentile(steady, 99)),
            "max": float(gaps.max()), "elapsed": elapsed}


def make_stress_model(out: Path) -> Path:
    """The default hand model's architecture at 64 px and an eighth of the width, untrained: the work a fast CPU
    does per frame with the real model, on a slow one. Untrained models are not turned upright, so every frame
    costs one letterboxed pass."""
    from cpm_core.model_card import ModelCard
    from cpm_core.network import build_cpm
    from cpm_core.spec import get_preset
    from cpm_core.weights import save_model

    spec = get_preset("hand-rt-128x3").with_(name="stress-64x3", input_size=64, width=0.125)
    card = ModelCard.for_spec(spec, name=f"untrained {spec.name} ({spec.gflops():.2f} GFLOPs, bench stress model)",
                              trained=False)
    return save_model(build_cpm(spec), card, out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=str(SHARED_VIDEO if SHARED_VIDEO.exists() else
                                          Path(__file__).resolve().parents[1] / "resources/samples/hand_desk.mp4"))
    p.add_argument("--model", help="model path (default: the embedded hand model)")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--view", default="multi", choices=("multi", "single", "joints", "tracker"))
    sample = Path(__file__).resolve().parents[1] / "resources/samples/hand_desk.mp4"
    two_hands = SHARED_VIDEO.with_name("mediapipe_gesture_test_video.mp4")
    p.add_argument("--multi-video", default=str(two_hands if two_hands.exists() else sample),
                   help="video for the multi-subject row (palm detector in front of the CPM)")
    p.add_argument("--threads", choices=("app", "default"), default="app",
                   help="app: the thread budget cpm-studio uses for this model on this CPU (cpm_core/runtime.py); "
                        "default: TensorFlow's and OpenCV's own (one thread per core each)")
    p.add_argument("--make-stress-model", metavar="DIR", help="write the untrained stress model to DIR and exit")
    args = p.parse_args(argv)
    if args.make_stress_model:
        print(f"wrote {make_stress_model(Path(args.make_stress_model))}")
        return 0

    from cpm_core.estimator import PoseEstimator
    from cpm_core.runtime import card_gflops, configure_pipeline_threads
    from cpm_core.sources import VideoReader

    # The app's thread budget for this model (cpm-studio sets it at start), for the bare rows too: like with like.
    threads = configure_pipeline_threads(model_gflops=card_gflops(args.model)) if args.threads == "app" else None
    est = PoseEstimator.from_path(args.model) if args.model else PoseEstimator.default()
    video = Path(args.video)
    with VideoReader(video) as r:
        file_fps, size = r.fps, f"{r.width}x{r.height}"
    bare_before = bare_fps(est, video, args.frames)
    every = gui_run(est, video, args.frames, args.view, realtime=False, heartbeat=False)
    bare_after = bare_fps(est, video, args.frames)  # a busy VM drifts: the ratio uses both bare runs' mean
    bare = (bare_before + bare_after) / 2
    stalls = gui_run(est, video, args.frames, args.view, realtime=False)
    unpainted = gui_run(est, video, args.frames, args.view, realtime=False, paint=False, heartbeat=False)
    live = gui_run(est, video, args.frames, args.view, realtime=True)
    multi = gui_run(est, Path(args.multi_video), args.frames, args.view, realtime=False, detect=True)

    print(f"machine: {describe_machine()}")
    print(f"model: {est.card.name} ({est.spec.input_size}px, {est.spec.stages} stages); video: {video.name} "
          f"{size} @ {file_fps:.0f} fps; view: {args.view}; frames: {args.frames}")
    print("threads: " + ("TensorFlow and OpenCV defaults" if threads is None else
                         f"TensorFlow {threads['tf_intra_op']} intra-op / {threads['tf_inter_op']} inter-op, "
                         f"OpenCV {threads['opencv']} (the app's budget; model estimated at "
                         f"{threads['model_ms_one_core']} ms a frame on one core)"))
    print("| run | frames/s | vs bare | frames | dropped | paints/s | p99 GUI stall ms | p99 after 1st s "
          "| max stall ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| bare model (decode + predict), mean of a run before and after the first GUI row "
          f"({bare_before:.1f}, {bare_after:.1f}) | {bare:.1f} | 100% | {args.frames} | 0 | – | – | – | – |")
    def ms(v: float) -> str:
        return "–" if not np.isfinite(v) else f"{v:.1f}"

    for name, r in (("GUI, every frame", every),
                    ("GUI, every frame, with the stall heartbeat", stalls),
                    ("GUI, every frame, views draw nothing (diagnosis)", unpainted),
                    ("GUI, real time (heartbeat)", live),
                    (f"GUI, every frame, detector + subjects ({Path(args.multi_video).name}; heartbeat)", multi)):
        paints = "–" if r is unpainted else f"{r['painted_fps']:.1f}"
        print(f"| {name} | {r['fps']:.1f} | {100 * r['fps'] / bare:.0f}% | {r['shown']} | {r['dropped']} | "
              f"{paints} | {ms(r['p99'])} | {ms(r['p99_steady'])} | {ms(r['max'])} |")
    ok_fps = every["fps"] >= 0.9 * bare
    ok_stall = max(stalls["p99"], live["p99"]) < 20.0
    print(f"targets: GUI >= 90% of bare fps: {'met' if ok_fps else 'MISSED'}; p99 stall < 20 ms: "
          f"{'met' if ok_stall else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
