"""`cpm convert-weights IN OUT`: turn the port's .pkl / TF1 checkpoint into a CPM Studio model folder."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser("convert-weights", help="convert the CPM port's .pkl or TF checkpoint to our format",
                              description="Convert the CPM port's weights (.pkl, TF1 checkpoint with tf.layers or "
                              "tf-slim names) into a CPM Studio model folder (weights + model card).")
    p.add_argument("input", help=".pkl file, checkpoint prefix / .index file, or folder with a checkpoint")
    p.add_argument("output", help="model folder to write")
    p.add_argument("--input-size", type=int, default=None,
                   help="network input size (not stored in the port's files; default 368 for .pkl, 256 for "
                   "checkpoints)")
    p.add_argument("--stride", type=int, choices=(4, 8), default=None,
                   help="heatmap stride (4 for the port's 'v2' student, default 8)")
    p.add_argument("--name", default=None, help="model name for the card")
    p.add_argument("--force", action="store_true",
                   help="replace OUTPUT even if it is a folder of other files (they are deleted)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cpm_core.weights import WeightsError, load_model, save_model
    from cpm_core.weights.own_format import check_output_folder

    try:
        check_output_folder(args.output, force=args.force)  # before the (slow) load: fail at once
        model, card = load_model(args.input, input_size=args.input_size, stride=args.stride)
        if args.name:
            card.name = args.name
        out = save_model(model, card, args.output, force=args.force)
    except WeightsError as exc:
        print(f"cpm convert-weights: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}: {card.summary().splitlines()[0]}")
    return 0
