"""`cpm train CONFIG`: supervised training of a CPM from any dataset format, as a process that speaks the
JSON-lines protocol on stdout."""

from __future__ import annotations

import argparse
import sys
import traceback

import numpy as np

from training.config import RunConfig, load_config
from training.events import EventWriter


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", default=None, help="TOML run configuration")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a setting, e.g. --set train.steps=200 (repeatable)")
    p.add_argument("--output", default=None, help="output folder (overrides the config's)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output folder")


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


def build_data(cfg: RunConfig, spec_joints: int | None = None, log=None):
    """(spec, skeleton, train cache, validation) from the config's datasets."""
    from training.data import build_cache, load_datasets
    from training.loop import Validation

    train_ds = load_datasets([cfg.resolve(p) for p in cfg.data.train])
    spec = cfg.model_spec(train_ds.skeleton.num_joints if spec_joints is None else spec_joints)
    if spec.num_joints != train_ds.skeleton.num_joints:
        raise ValueError(f"the model predicts {spec.num_joints} joints but the dataset has "
                         f"{train_ds.skeleton.num_joints} ({train_ds.skeleton.name})")
    d = cfg.data
    cache = build_cache(train_ds, spec.input_size, d.margin, d.cache_scale, d.min_joints, log)
    val_cache = None
    if d.val:
        val_cache = build_cache(load_datasets([cfg.resolve(p) for p in d.val]), spec.input_size, d.margin,
                                d.cache_scale, d.min_joints, log)
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


def run(args: argparse.Namespace) -> int:
    events = EventWriter()
    try:
        cfg = prepare_config(args)
        from training.data import make_pipeline
        from training.loop import StopFlag, run_loop

        stop = StopFlag()
        stop.install()
        spec, skeleton, cache, val = build_data(cfg, log=lambda m: print(m, file=sys.stderr))
        pipeline = make_pipeline(cache, spec.input_size, spec.stride, cfg.train.batch, cfg.augment,
                                 cfg.data.cache_scale, cfg.train.sigma, seed=cfg.train.seed)
        run_loop(cfg, spec, skeleton, pipeline, val, events, stop, args.resume, "train",
                 steps_per_epoch=max(1, len(cache) // cfg.train.batch), num_train=len(cache))
        return 0
    except Exception as exc:  # the protocol promises an `error` event, whatever went wrong
        traceback.print_exc(file=sys.stderr)
        events.emit("error", message=f"{exc.__class__.__name__}: {exc}")
        return 1
