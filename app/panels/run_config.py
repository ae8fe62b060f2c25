"""The Train and Distill panels' run configuration: built and validated by `training.config` (the same code that
reads `cpm train`'s TOML and its `--set section.key=value` overrides), written back as the run's TOML.

The panels turn their fields into `section.key=value` overrides and give them to `training.config.load_config`,
so a setting the training code does not know, or a value of the wrong type, is refused in the form with the
trainer's own message, and the file written is exactly what `cpm train` reads back. The standard library reads
TOML but cannot write it; a run configuration only needs tables of strings, numbers, booleans, lists and inline
tables, written here.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from cpm_core.spec import ModelSpec
from training.config import RunConfig, load_config

# RunConfig fields that are not settings of a run file (load_config fills base_dir from the file's folder).
NOT_IN_FILE = ("base_dir",)


def toml_value(value) -> str:
    """`value` as a TOML value (also what `--set section.key=VALUE` and `load_config` overrides take)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML has no {value}")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(config: dict) -> str:
    """Top-level scalars first, then one [table] per dict."""
    lines = [f"{k} = {toml_value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for section, table in config.items():
        if isinstance(table, dict):
            lines += ["", f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def split_settings(text: str) -> list[str]:
    """A form field of settings, "input_size=96, stages=2" (commas or semicolons; not those inside brackets or
    quotes), as separate "key=value" items for `load_config`, which parses the values."""
    items, depth, quote, start = [], 0, "", 0
    for k, ch in enumerate(text + ","):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch in ",;" and depth <= 0:
            item = text[start:k].strip()
            if item:
                if "=" not in item:
                    raise ValueError(f"model overrides: expected key=value, got {item!r}")
                items.append(item)
            start = k + 1
    return items


def build_run_config(overrides: list[str]) -> RunConfig:
    """A RunConfig from `section.key=value` overrides on top of the defaults, validated by `load_config`; the
    model overrides are checked against the preset's ModelSpec too. ValueError says what is wrong."""
    cfg = load_config(None, overrides)
    try:
        cfg.model_spec()
    except TypeError:  # ModelSpec.with_ got a field it does not have
        known = [f.name for f in dataclasses.fields(ModelSpec)]
        unknown = ", ".join(k for k in cfg.model.spec if k not in known)
        raise ValueError(f"model overrides: no setting {unknown} (known: {', '.join(known)})") from None
    except KeyError as exc:
        raise ValueError(f"unknown model preset {exc}") from None
    return cfg


def config_dict(cfg: RunConfig) -> dict:
    """The settings of `cfg` that differ from a default RunConfig (plus the datasets), as TOML tables: the run
    file says what this run chose, and `load_config` fills the rest with the same defaults."""
    full, default = cfg.to_dict(), RunConfig().to_dict()
    out: dict = {}
    for key, value in full.items():
        if key in NOT_IN_FILE:
            continue
        if isinstance(value, dict):
            table = {k: v for k, v in value.items() if v != default[key][k] or (key, k) == ("data", "train")}
            if table:
                out[key] = table
        elif value != default[key]:
            out[key] = value
    return out


def write_run_config(path: str | Path, cfg: RunConfig) -> Path:
    """Write `cfg` as the TOML `cpm train PATH` reads back into the same settings (atomically)."""
    from cpm_core.atomic_io import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_toml(config_dict(cfg)))
    return path
