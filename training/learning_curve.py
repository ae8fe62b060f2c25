"""Learning curves (training loss and validation PCK against step) from a run's metrics.csv, as PNG + CSV.

    python -m training.learning_curve runs/hand_default docs/hand_default_learning_curve
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from cpm_core.atomic_io import atomic_write_text

METRICS_COLUMNS = ("step", "loss", "lr", "images_per_s", "val_pck", "val_epe")


def metrics_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv as dicts, whatever a killed run left behind.

    Why: a run killed before its first flush, then resumed, left a file without its header (every row then
    read as the header: `KeyError: 'step'`), and a kill mid-write leaves a torn last line. A file without a
    header is read with the columns `cpm train` writes (`METRICS_COLUMNS`); lines with the wrong number of
    fields or a step that is not a number are skipped. A missing file is no rows."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    lines = list(csv.reader(text.splitlines()))
    columns: tuple[str, ...] = METRICS_COLUMNS
    if lines and lines[0] and lines[0][0].strip() == "step":
        columns = tuple(c.strip() for c in lines[0])
        lines = lines[1:]
    rows = []
    for fields in lines:
        if len(fields) != len(columns) or (fields and fields[0].strip() == "step"):
            continue
        row = dict(zip(columns, fields))
        try:
            int(row["step"])
        except (KeyError, ValueError):
            continue
        rows.append(row)
    return rows


def read_metrics(run_dir: str | Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) and (step, val PCK) rows of a run; a resumed run's repeated steps keep the last value."""
    loss: dict[int, float] = {}
    pck: dict[int, float] = {}
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {run_dir} a training run's output folder?)")
    for row in metrics_rows(path):
        step = int(row["step"])
        try:
            if row.get("loss"):
                loss[step] = float(row["loss"])
            if row.get("val_pck"):
                pck[step] = float(row["val_pck"])
        except ValueError:
            continue
    return sorted(loss.items()), sorted(pck.items())


def _card(run_dir: str | Path) -> dict:
    import json

    path = Path(run_dir) / "model" / "card.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write_learning_curve(run_dir: str | Path, out_prefix: str | Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loss, pck = read_metrics(run_dir)
    card = _card(run_dir)
    upright = (card.get("provenance") or {}).get("orientation") == "upright"
    # An upright run validates on crops turned by the labels' angle (and side); the card's headline is the
    # model with the angle found at run time, drawn as one point at the last step.
    val_label = "validation PCK@0.2" + (" (label-angle crops)" if upright else "")
    final = (card.get("metrics") or {}).get("pck@0.2") if upright else None
    how = (card.get("metrics") or {}).get("orientation", "")
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    lines = ["step,val_pck_at_0.2"] + [f"{s},{v:.4f}" for s, v in pck]
    csv_path = out_prefix.with_suffix(".csv")
    atomic_write_text(csv_path, "\n".join(lines) + "\n")
    fig, ax1 = plt.subplots(figsize=(7, 4), dpi=110)
    if loss:
        ax1.plot([s for s, _ in loss], [v for _, v in loss], color="tab:gray", lw=0.8, label="training loss")
        ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (sum over stages)")
    ax2 = ax1.twinx()
    ax2.plot([s for s, _ in pck], [v for _, v in pck], "o-", color="tab:blue", label=val_label)
    if final is not None and pck:
        ax2.plot([pck[-1][0]], [final], "*", ms=14, color="tab:red",
                 label=f"final model, angle and side from {how or 'search'}: {final:.3f}")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("validation PCK@0.2")
    ax2.axhline(0.8, color="tab:blue", ls=":", lw=0.8)
    ax1.set_title(f"Learning curve: {Path(run_dir).name}")
    fig.legend(loc="lower right", bbox_to_anchor=(0.88, 0.16), fontsize=8)
    fig.tight_layout()
    png_path = out_prefix.with_suffix(".png")
    tmp = png_path.with_name(f".{png_path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png_path)
    return png_path, csv_path


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    for p in write_learning_curve(sys.argv[1], sys.argv[2]):
        print(p)
