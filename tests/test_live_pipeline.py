"""The Qt-free live pipeline (cpm_core/live_pipeline.py) with a real tiny CPM: newest-frame mailbox, warm-up, post
step order, the synchronous path, the QThread adapter, and the estimator lock it shares with model-assisted
labelling (no two threads ever run one estimator at once)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from app_support import IMAGE, SlowEstimator

from cpm_core.live_pipeline import FramePacket, LivePipeline
from cpm_core.pose_frame import PipelineCounts, PoseFrame

WAIT_S = 15.0


class Running:
    """A pipeline's model loop in a plain thread (no Qt), stopped and joined on exit."""

    def __init__(self, pipeline: LivePipeline):
        self.pipeline = pipeline
        self.thread = threading.Thread(target=pipeline.run, daemon=True)

    def __enter__(self) -> LivePipeline:
        self.thread.start()
        return self.pipeline

    def __exit__(self, *exc) -> None:
        self.pipeline.stop()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive()


def wait_until(condition, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_the_mailbox_keeps_only_the_newest_frame_under_a_slow_model(estimator):
    slow = SlowEstimator(estimator, delay=0.15)
    pipeline = LivePipeline(slow)
    results: list[PoseFrame] = []
    pipeline.on_result = results.append
    with Running(pipeline):
        frame = np.full((64, 64, 3), 100, np.uint8)
        for i in range(30):  # a 100 fps source against a ~6 fps model
            pipeline.submit(FramePacket(i, frame, time.perf_counter()))
            time.sleep(0.01)
        wait_until(lambda: pipeline.idle() and results and results[-1].index == 29)
    assert pipeline.captured == 30
    assert len(results) == slow.calls <= 6  # nothing queued up behind the model
    assert pipeline.dropped == 30 - slow.calls
    assert results[-1].index == 29  # the newest frame always wins
    last = results[-1]
    assert last.counts == PipelineCounts(30, 30 - slow.calls, slow.calls)  # named counts, not a tuple


def test_the_pipeline_warms_its_model_up_before_the_first_frame(estimator):
    """Loading the follower's helpers and tracing graphs happens when the loop starts (and on a new model), not on
    a source's first frame; idle() waits for it."""
    pipeline = LivePipeline(estimator)
    assert not pipeline.idle()  # warming up is pending
    with Running(pipeline):
        wait_until(pipeline.idle)
        assert pipeline.follower is not None and pipeline.follower.estimator is estimator
        pipeline.set_estimator(estimator)
        assert not pipeline.idle()
        wait_until(pipeline.idle)


def test_post_steps_run_beside_the_model_in_frame_order_and_a_failure_is_reported(estimator):
    """Smoothing, reductions and the hand-over run on the post thread: results still arrive in frame order, every
    frame is finished before idle(), and a failing post step is reported, not fatal."""
    pipeline = LivePipeline(estimator)
    finish, failed, results = pipeline.finish, [], []

    def slow_finish(output):
        if output.packet.index == 3:
            raise ValueError("broken bookkeeping")
        time.sleep(0.03)  # slower than the tiny model: post jobs queue up behind it
        return finish(output)

    pipeline.finish = slow_finish
    pipeline.on_result = results.append
    pipeline.on_frame_failed = failed.append
    with Running(pipeline):
        frame = np.full((64, 64, 3), 90, np.uint8)
        for i in range(10):
            assert pipeline.wait_for_slot(5.0)
            pipeline.submit(FramePacket(i, frame, time.perf_counter(), restart=i == 0))
        wait_until(pipeline.idle)
    assert [r.index for r in results] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [r.processed for r in results] == [1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert len(failed) == 1 and "broken bookkeeping" in failed[0]


def test_process_runs_both_steps_in_the_callers_thread(estimator):
    pipeline = LivePipeline(estimator)
    seen = []
    pipeline.on_result = seen.append
    frame = np.full((80, 60, 3), 120, np.uint8)
    pose = pipeline.process(FramePacket(7, frame, time.perf_counter(), restart=True, generation=3))
    assert seen == [pose]
    assert (pose.index, pose.generation, pose.bgra.shape) == (7, 3, (80, 60, 4))
    assert pose.stage_max.shape[0] == 2 and pose.joint_peaks.shape == (21,)  # the tiny model's two stages
    assert pose.skeleton is estimator.card.skeleton and not pose.detecting
    assert {"model", "worker"} <= set(pose.timings)


class OverlapProbe:
    """An estimator wrapper that records how many threads are inside `predict` at once (and who called)."""

    def __init__(self, inner, delay: float = 0.02):
        self.inner, self.card, self.delay = inner, inner.card, delay
        self._lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0
        self.callers: set[str] = set()

    def predict(self, frame, crop=None):
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.callers.add(threading.current_thread().name)
        try:
            time.sleep(self.delay)  # long enough that unguarded calls from two threads would overlap
            return self.inner.predict(frame, crop=crop)
        finally:
            with self._lock:
                self.inside -= 1


def test_live_inference_and_assisted_labelling_never_run_one_estimator_at_once(qtbot, estimator):
    """The pipeline owns the estimator's lock; the labelling assistant's PredictionWorker takes the same lock, so
    while frames stream through the live pipeline and the assistant predicts 8 frames, the estimator never has
    two callers inside it."""
    from app.annotate.assist import PredictionWorker

    probe = OverlapProbe(estimator)
    pipeline = LivePipeline(probe)
    results = []
    pipeline.on_result = results.append
    with Running(pipeline):
        frame = np.full((64, 64, 3), 80, np.uint8)
        worker = PredictionWorker(probe, [(i, IMAGE) for i in range(8)], pipeline.model_lock)
        predicted = []
        worker.framePredicted.connect(lambda i, _kp: predicted.append(i))
        worker.start()
        i = 0
        while not worker.isFinished() or i < 5:
            pipeline.submit(FramePacket(i, frame, time.perf_counter()))
            i += 1
            qtbot.wait(5)
        wait_until(pipeline.idle)
        qtbot.waitUntil(lambda: len(predicted) == 8, timeout=int(WAIT_S * 1000))
    assert results and len(predicted) == 8
    assert len(probe.callers) >= 2  # both the pipeline's thread and the assistant's called it
    assert probe.most_inside == 1


def test_the_qthread_adapter_turns_callbacks_into_signals(qtbot, estimator):
    from app.inference import InferenceWorker

    worker = InferenceWorker(estimator)
    worker.start()
    try:
        with qtbot.waitSignal(worker.resultReady, timeout=int(WAIT_S * 1000)) as got:
            worker.submit(FramePacket(0, np.full((64, 64, 3), 70, np.uint8), time.perf_counter()))
        assert isinstance(got.args[0], PoseFrame) and got.args[0].index == 0
        assert worker.estimator is estimator and worker.processed == 1
    finally:
        worker.stop()
        worker.wait(5000)


def test_a_lost_tracker_finds_a_small_off_centre_hand_through_the_palm_detectors_box():
    """Lost, the tracker used to run the model on the centred square, where a small hand is mostly background and
    its presence stays under the threshold, so the tracker never zoomed in. Now the palm detector's hand box is
    the crop: the first frame finds the hand, and the tracker's next crop is around it, not the whole frame."""
    import cv2

    from cpm_core.estimator import PoseEstimator
    from cpm_core.live_pipeline import ModelStep
    from cpm_core.presence import THRESHOLD

    frame = cv2.imread(str(Path(__file__).parent / "fixtures" / "detect" / "hand_off_centre.jpg"))
    step = ModelStep(PoseEstimator.default())
    if step.follower.palm is None:
        pytest.skip("the bundled palm detector cannot run here")
    result, track = step.single(frame, tracking=True)
    assert result.oriented_by == "palm" and result.presence > THRESHOLD
    assert not track.lost and not step.tracker.lost
    nxt = step.tracker.next_crop(frame.shape)
    assert nxt.side < 0.6 * min(frame.shape[:2])  # zoomed in on the hand ...
    assert nxt.cx > frame.shape[1] / 2  # ... which is right of centre
    result, track = step.single(frame, tracking=True)
    assert result.oriented_by == "followed" and not track.lost
