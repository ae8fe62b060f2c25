"""Run configuration: one TOML file per run, overridable from the command line (`--set train.steps=500`).

Paths in the file are relative to the file's folder, so a recipe can be run from anywhere.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_core.spec import ModelSpec, get_preset


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    val_split: float = 0.0  # fraction of train held out when no val set is given
    margin: float = 1.6  # crop side = margin x the longer side of the subject's box
    cache_scale: float = 1.6  # cached crops are this much larger than the training crop (room to augment)
    min_joints: int = 3  # instances with fewer labelled joints are skipped
    orientation: str = "any"  # any | upright: crops rotated so the subject points up (see cpm_core.orientation)
    chirality: str = "any"  # any | canonical: upright hands mirrored so the thumb side is always on the left
    # Groups of joints (names or indices): each training subject is also cached cropped around one group's
    # joints (the groups taken in turn), e.g. head and shoulders, as a webcam shows a person.
    part_crops: list = field(default_factory=list)
    # The training sets' format (a cpm_core.dataset.formats name: coco, labels, tfrecord, port-tfrecord,
    # cmu-hand, project); "": told from each file's name and contents. For data whose format cannot be told.
    format: str = ""


@dataclass
class ModelConfig:
    preset: str = "hand-rt-128x3"
    spec: dict = field(default_factory=dict)  # overrides of the preset's fields (input_size, stages, width, ...)
    init: str = ""  # weights to start from (any format load_model reads)
    skeleton: str = ""  # default: the dataset's skeleton


@dataclass
class TrainConfig:
    batch: int = 16
    steps: int = 1000
    optimizer: str = "adam"  # adam | adamw | rmsprop (the port)
    lr: float = 1e-3
    schedule: str = "cosine"  # cosine | exponential (the port: x0.5 every 10k steps) | constant
    decay_steps: int = 10000
    decay_rate: float = 0.5
    warmup_steps: int = 0
    weight_decay: float = 1e-4  # adamw only
    precision: str = "auto"  # auto | float32 | bfloat16
    strategy: str = "default"  # default | mirrored | multiworker (TF_CONFIG)
    log_every: int = 10
    eval_every: int = 250
    checkpoint_every: int = 250
    keep_checkpoints: int = 3
    sigma: float = 1.0  # Gaussian target width in heatmap cells
    ema: float = 0.0  # momentum of an exponential moving average of the weights (e.g. 0.998), evaluated and
    # exported instead of the last step's weights; 0: off
    seed: int = 0


@dataclass
class AugmentConfig:
    rotation: float = 180.0  # max |angle| in degrees; hands appear at every angle
    scale: tuple[float, float] = (0.75, 1.25)
    translate: float = 0.1  # max shift as a fraction of the crop side
    flip: bool = False  # a horizontal flip swaps left/right joints where the skeleton has pairs
    brightness: float = 0.2
    contrast: float = 0.3
    saturation: float = 0.3
    low_res: float = 0.5  # probability of a down-and-up resize: small, blurry subjects look like that
    low_res_min: float = 0.3  # smallest down-scale factor of that resize
    noise: float = 4.0  # max standard deviation of added pixel noise (0-255 scale)
    erase: float = 0.0  # probability of painting over a random rectangle (random erasing): joints stay labelled
    erase_size: float = 0.4  # largest side of that rectangle as a fraction of the crop side (smallest: a tenth)
    # Copy-paste (issue #17): a model trained on a few scenes learns the scenes; cutting the subject out (a soft
    # mask around its joints) and blending it onto other scenes makes the hand the only constant.
    backgrounds: list = field(default_factory=list)  # subject-free images: folders and/or files, relative to
    # the config file; loaded once, small, into memory
    paste_background: float = 0.0  # probability of blending the subject onto a random crop of a background
    paste_subject: float = 0.0  # probability of blending it onto a random crop of another training subject's crop
    # Negatives: the probability that a training crop is replaced by a random crop of a background image, with
    # every joint's target map zero (background one) and every channel in the loss. Why: every training crop
    # holds a subject, so a net fine-tuned with heavy occlusion and paste learns to see a hand everywhere, and
    # the presence score (cpm_core.presence, read from the background channel) stops telling hand-free crops.
    negative: float = 0.0
    paste_mask: str = "hull"  # hull: the joints' convex hull, dilated and feathered | box: their bounding box
    mask_dilate: float = 0.12  # mask dilation, as a fraction of the subject's size (its joints' extent)
    mask_feather: float = 0.06  # Gaussian sigma of the mask's soft edge, same unit
    # Other hands as occluders / distractors: another subject's masked hand pasted over the crop, off-centre;
    # the main subject keeps its labels (like erase), the pasted hand gets none.
    occluder: float = 0.0  # probability
    occluder_scale: tuple[float, float] = (0.6, 1.1)  # its size relative to the main subject at scale 1
    occluder_shift: tuple[float, float] = (0.3, 0.6)  # its centre's distance from the crop centre (crop sides)
    # Camera degradations the training scenes lack.
    motion_blur: float = 0.0  # probability of a motion blur (a line kernel in one of 8 directions)
    defocus_blur: float = 0.0  # probability of a defocus blur (a disc kernel)
    blur_size: int = 9  # longest motion kernel / widest disc, in input pixels (odd)
    jpeg: float = 0.0  # probability of JPEG re-encoding artefacts
    jpeg_quality: tuple[float, float] = (20.0, 90.0)  # quality range of that re-encoding
    hue: float = 0.0  # max |hue rotation| in degrees (skin tones, lighting colour)
    channel_gain: float = 0.0  # max per-channel gain change (each of B, G, R scaled by 1 +- this)
    # Wrong-side crops (canonical hands only): the probability that a crop is shown mirrored, i.e. with the thumb
    # side on the right, as the app's pipeline shows a hand whose side the palm detector misjudged (9-19% of
    # hands, bench/palm_gap.py). Its target maps are the mirrored joints at `wrong_side_peak` height: the net
    # learns to place the joints of such a hand anyway (a canonical net trained without them put a wrong-side
    # hand's thumb on its little finger: PCK 0.34 against 0.92) while answering with less confidence.
    wrong_side: float = 0.0
    wrong_side_peak: float = 0.5


@dataclass
class DistillConfig:
    teacher: str = ""  # a CPM model (any format) or a .tflite keypoint model
    stage_map: list[int] = field(default_factory=list)  # teacher stage (1-based) for each student stage
    alpha: float = 0.0  # weight of the ground-truth loss where labels exist
    confidence: float = 0.5  # keypoint teachers: frames whose presence score is lower are skipped


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    output: str = "runs/latest"
    name: str = ""
    base_dir: str = "."  # folder relative paths are resolved against (the config file's folder)

    def resolve(self, p: str) -> str:
        return str(p) if not p or Path(p).is_absolute() else str((Path(self.base_dir) / p).resolve())

    @property
    def output_dir(self) -> Path:
        return Path(self.resolve(self.output))

    def model_spec(self, num_joints: int | None = None) -> ModelSpec:
        spec = get_preset(self.model.preset) if self.model.preset else ModelSpec()
        changes = dict(self.model.spec)
        if num_joints is not None and "num_joints" not in changes:
            changes["num_joints"] = num_joints
        spec = spec.with_(**changes) if changes else spec
        return spec

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "augment": AugmentConfig,
             "distill": DistillConfig}


def _coerce(cls, key: str, value: Any, where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ValueError(f"{where}: unknown setting {key!r} (known: {', '.join(fields)})")
    default = fields[key].default if fields[key].default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int) and not isinstance(default, bool):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        return tuple(float(v) for v in value)
    if key in ("train", "val", "backgrounds") and isinstance(value, str):
        return [value]
    return value


def _parse_value(text: str) -> Any:
    """A command-line value as TOML would read it (numbers, booleans, lists), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    raw: dict = {}
    base = Path(".").resolve()
    if path is not None:
        p = Path(path)
        try:
            raw = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"{p}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: not valid TOML ({exc})") from exc
        base = p.resolve().parent
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set {item!r}: expected section.key=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        target = raw
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _parse_value(value.strip())
    cfg = RunConfig(base_dir=str(base))
    for key, value in raw.items():
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise ValueError(f"[{key}] must be a table")
            section = getattr(cfg, key)
            for k, v in value.items():
                setattr(section, k, _coerce(_SECTIONS[key], k, v, f"[{key}]"))
        elif key in ("output", "name"):
            setattr(cfg, key, str(value))
        else:
            raise ValueError(f"unknown top-level setting {key!r} (sections: {', '.join(_SECTIONS)}, output, name)")
    _check_augment(cfg)
    if cfg.data.format:
        from cpm_core.dataset.formats import FORMATS, READ_ONLY_FORMATS

        if cfg.data.format not in FORMATS + READ_ONLY_FORMATS:
            raise ValueError(f"data.format {cfg.data.format!r} is not a dataset format "
                             f"(known: {', '.join(FORMATS + READ_ONLY_FORMATS)}; empty: told from the files)")
    if cfg.data.part_crops and cfg.data.val_split > 0 and not cfg.data.val:
        raise ValueError("data.part_crops with data.val_split would train on parts of the held-out subjects; "
                         "give a separate data.val set")
    if not isinstance(cfg.data.part_crops, list) or not all(isinstance(g, list) for g in cfg.data.part_crops):
        raise ValueError("data.part_crops must be a list of joint lists, e.g. [[\"nose\", \"left_shoulder\", "
                         "\"right_shoulder\"]]")
    return cfg


def _check_augment(cfg: RunConfig) -> None:
    """Validate the copy-paste and degradation settings and resolve `augment.backgrounds` against the config's
    folder now, because the training code hands the AugmentConfig on without the RunConfig."""
    a = cfg.augment
    if not isinstance(a.backgrounds, list) or not all(isinstance(b, str) for b in a.backgrounds):
        raise ValueError("augment.backgrounds must be a list of folders, image files or .txt lists of them")
    a.backgrounds = [cfg.resolve(b) for b in a.backgrounds]
    for name in ("paste_background", "paste_subject", "occluder", "motion_blur", "defocus_blur", "jpeg", "negative",
                 "wrong_side"):
        if not 0.0 <= getattr(a, name) <= 1.0:
            raise ValueError(f"augment.{name} is a probability (0 to 1), got {getattr(a, name)}")
    if a.paste_background + a.paste_subject > 1.0:
        raise ValueError("augment.paste_background + augment.paste_subject must be at most 1 (one scene per crop)")
    if not 0.0 <= a.wrong_side_peak <= 1.0:
        raise ValueError(f"augment.wrong_side_peak is a target height (0 to 1), got {a.wrong_side_peak}")
    if a.wrong_side > 0 and cfg.data.chirality != "canonical":
        raise ValueError("augment.wrong_side needs data.chirality = 'canonical' (only a canonical model has a "
                         "wrong side)")
    if a.wrong_side > 0 and a.flip:
        raise ValueError("augment.wrong_side and augment.flip both mirror crops; use one")
    if a.negative > 0 and not a.backgrounds:
        raise ValueError("augment.negative needs augment.backgrounds (folders or files of subject-free images)")
    if a.paste_background > 0 and not a.backgrounds:
        raise ValueError("augment.paste_background needs augment.backgrounds (folders or files of images)")
    if a.paste_mask not in ("hull", "box"):
        raise ValueError(f"augment.paste_mask must be 'hull' or 'box', got {a.paste_mask!r}")
    if a.blur_size < 3 or a.blur_size % 2 == 0:
        raise ValueError(f"augment.blur_size must be an odd number >= 3, got {a.blur_size}")
    lo, hi = a.jpeg_quality
    if not 1 <= lo <= hi <= 100:
        raise ValueError(f"augment.jpeg_quality must be [low, high] within 1-100, got {list(a.jpeg_quality)}")
