"""`cpm train CONFIG`: supervised training of a CPM from any dataset format, as a process that speaks the
JSON-lines protocol on stdout."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.config import RunConfig, load_config
from training.events import DoneEvent, ErrorEvent, Event, EventWriter


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None, help="TOML run configuration")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--output", default=None, help="output folder (overrides the config's)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output folder")


class LeaveAfterLastEvent(EventWriter):
    """A run's event writer (`inner`) that ends the process with `leave(code)` right after the run's last event:
    `done` (code 0) or `error` (code 1), the exit codes docs/protocol.md gives. `leave` is `args.leave`, which
    the `cpm` process sets to `training.cli.leave_process` (see there why); None (main() called in-process)
    writes through unchanged.

    It acts inside `write` because the wait it avoids starts as soon as `run_loop` returns, or as the `error`
    handler lets go of the traceback: both before any code after the event could end the process."""

    def __init__(self, inner: EventWriter, leave: Callable[[int], None] | None):
        super().__init__(inner.stream)
        self.inner = inner
        self.leave = leave

    def write(self, event: Event) -> Event:
        stamped = self.inner.write(event)
        if self.leave is not None and isinstance(stamped, (DoneEvent, ErrorEvent)):
            sys.stderr.flush()
            self.leave(0 if isinstance(stamped, DoneEvent) else 1)
        return stamped


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a CPM (JSON lines on stdout; 'stop' on stdin stops cleanly)",
                              description=__doc__)
    add_common(p)
    p.set_defaults(func=run)


def prepare_config(args: argparse.Namespace) -> RunConfig:
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"output={args.output!r}".replace("'", '"'))
    return load_config(args.config, overrides)


def missing_data(cfg: RunConfig) -> list[str]:
    """The datasets and background image folders/files the config names that do not exist, as written in it
    (train and val relative to the config file; backgrounds as load_config resolved them)."""
    missing = [p for p in (*cfg.data.train, *cfg.data.val) if not Path(cfg.resolve(p)).exists()]
    return missing + [str(b) for b in cfg.augment.backgrounds if not Path(b).exists()]


def missing_data_message(cfg: RunConfig, missing: list[str]) -> str:
    """One line for a run whose data is absent, e.g. a recipe written for the shared data run from a clone."""
    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
    where = cfg.resolve(missing[0])
    return (f"data not found: {missing[0]}{more} (looked for {where}); this recipe needs that data beside it "
            "(the default recipes: ../shared/data next to the clone); "
            "training/recipes/quickstart_hand.toml runs on the bundled set")


def build_data(cfg: RunConfig, spec_joints: int | None = None, log=None):
    """(spec, skeleton, train cache, validation) from the config's datasets."""
    from training.data import build_cache, load_datasets
    from training.loop import Validation

    train_ds = load_datasets([cfg.resolve(p) for p in cfg.data.train], log, cfg.data.format)
    spec = cfg.model_spec(train_ds.skeleton.num_joints if spec_joints is None else spec_joints)
    if spec.num_joints != train_ds.skeleton.num_joints:
        raise ValueError(f"the model predicts {spec.num_joints} joints but the dataset has "
                         f"{train_ds.skeleton.num_joints} ({train_ds.skeleton.name})")
    d = cfg.data
    cache = build_cache(train_ds, spec.input_size, d.margin, d.cache_scale, d.min_joints, log, d.orientation,
                        d.chirality, d.part_crops)
    val_cache = None
    if d.val:
        val_cache = build_cache(load_datasets([cfg.resolve(p) for p in d.val], log), spec.input_size, d.margin,
                                d.cache_scale, d.min_joints, log, d.orientation, d.chirality)
    elif d.val_split > 0:
        rng = np.random.default_rng(cfg.train.seed)
        idx = rng.permutation(len(cache))
        n_val = max(1, int(round(len(cache) * d.val_split)))
        val_cache, cache = cache.subset(idx[:n_val]), cache.subset(idx[n_val:])
    val = None
    if val_cache is not None:
        from training.data import eval_arrays

        images, kps = eval_arrays(val_cache, spec.input_size, d.cache_scale)
        val = Validation(images, kps, val_cache.visibility > 0,
                         np.full(len(images), spec.input_size / d.margin, np.float32))
    return spec, train_ds.skeleton, cache, val


def searched_metrics(cfg: RunConfig, log=None):
    """For a run on upright crops, the validation crops were turned by the labelled angle (and side), which a
    user's frames do not have. This scores the exported model the way `cpm eval` does (angle and side from the
    palm detector for canonical models, else the model's own search; the model-alone search too) and keeps
    the label-angle PCK beside them, so the card's headline is honest."""
    if cfg.data.orientation != "upright" or not cfg.data.val:
        return None

    def final(model, card) -> dict:
        import math

        from cpm_core.estimator import PoseEstimator
        from training.data import load_datasets
        from training.evaluate import collect_predictions, score

        est = PoseEstimator(model, card, warm_up=False, precision="float32")
        ds = load_datasets([cfg.resolve(p) for p in cfg.data.val])
        how = "palm" if cfg.data.chirality == "canonical" else "search"
        arrays = collect_predictions(est, ds, cfg.data.margin, cfg.data.min_joints, log=log, orientation=how)
        res = score(arrays["pred"], arrays["gt"], arrays["labelled"], arrays["norm"], card.skeleton.joints)
        alone = res
        if how == "palm":
            arrays = collect_predictions(est, ds, cfg.data.margin, cfg.data.min_joints, log=log,
                                         orientation="search")
            alone = score(arrays["pred"], arrays["gt"], arrays["labelled"], arrays["norm"], card.skeleton.joints)
        label = card.metrics
        return {"pck@0.2": round(res["pck"], 4), "orientation": how, "pck@0.2_model_alone": round(alone["pck"], 4),
                "pck_per_joint": {r["joint"]: (None if r["pck"] is None or not math.isfinite(r["pck"])
                                               else round(r["pck"], 4)) for r in res["per_joint"]},
                "epe_px": None if res["epe_px"] is None else round(res["epe_px"], 2),
                "pck@0.2_label_angle": label.get("pck@0.2"),
                "pck_per_joint_label_angle": label.get("pck_per_joint")}

    return final


def clear_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message alone tells the user what is wrong and where (a file, a record, a worker):
    `cpm train` prints them as one line, without a traceback."""
    from cpm_core.dataset.issues import DatasetFormatError
    from cpm_core.weights import WeightsError
    from training.data import NoSubjectsError
    from training.loop import TrainingError

    return (TrainingError, WeightsError, DatasetFormatError, NoSubjectsError)


def run(args: argparse.Namespace) -> int:
    events = LeaveAfterLastEvent(EventWriter(), getattr(args, "leave", None))
    try:
        if args.config and not Path(args.config).is_file():  # a mistyped recipe: one line, no traceback
            message = f"config not found: {args.config}"
            print(f"cpm train: {message}", file=sys.stderr)
            events.write(ErrorEvent(message=message))
            return 1
        cfg = prepare_config(args)
        missing = missing_data(cfg)
        if missing:  # before TensorFlow is asked to do anything: one line and one `error` event, no traceback
            message = missing_data_message(cfg, missing)
            print(f"cpm train: {message}", file=sys.stderr)
            events.write(ErrorEvent(message=message))
            return 1
        from training.data import make_pipeline
        from training.loop import StopFlag, make_strategy, run_loop

        # Before any tensor exists: MultiWorkerMirroredStrategy configures the collective ops at start-up.
        strategy = make_strategy(cfg.train.strategy)
        stop = StopFlag()
        stop.install()
        notes: list[str] = []

        def log(message: str) -> None:
            print(message, file=sys.stderr, flush=True)
            if ": dropped " in message:  # the readers' refused records, also told to whoever reads the events
                notes.append(message)

        spec, skeleton, cache, val = build_data(cfg, log=log)
        pipeline = make_pipeline(cache, spec.input_size, spec.stride, cfg.train.batch, cfg.augment,
                                 cfg.data.cache_scale, cfg.train.sigma, seed=cfg.train.seed)
        run_loop(cfg, spec, skeleton, pipeline, val, events, stop, args.resume, "train",
                 steps_per_epoch=max(1, len(cache) // cfg.train.batch), num_train=len(cache),
                 final_metrics=searched_metrics(cfg, log=lambda m: print(m, file=sys.stderr)),
                 strategy=strategy, data_notes=notes)
        return 0
    except clear_errors() as exc:  # errors that say what to do: one line, no traceback
        message = str(exc)
        print(f"cpm train: {message}", file=sys.stderr)
        events.write(ErrorEvent(message=message))
        return 1
    except Exception as exc:  # the protocol promises an `error` event, whatever went wrong
        traceback.print_exc(file=sys.stderr)
        events.write(ErrorEvent(message=f"{exc.__class__.__name__}: {exc}"))
        return 1
