"""The model card: everything needed to rebuild, feed and trust a set of weights.

A card travels with every weights file so that a model is never run with the wrong joint order, input
normalisation or input size, and so that a user can see what a model was trained on and how well it did.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from cpm_core.packaged_runtimes import validate_packaged
from cpm_core.preprocess import Normalisation
from cpm_core.presence import MIDPOINT_BLOBS
from cpm_core.skeleton import Skeleton, generic_skeleton
from cpm_core.spec import ModelSpec

CARD_VERSION = 1


@dataclass
class ModelCard:
    spec: ModelSpec
    skeleton: Skeleton
    normalisation: Normalisation = field(default_factory=Normalisation)
    name: str = ""
    description: str = ""
    trained: bool = True
    provenance: dict = field(default_factory=dict)  # source file, data, recipe, steps, wall time, machine
    metrics: dict = field(default_factory=dict)  # validation PCK per joint and mean, frames/s, ...
    # How heatmaps become joints: {"method": "dark", "blur_sigma": cells} for models trained here (DARK decoding
    # with the training targets' sigma, see cpm_core.heatmaps.decode_predictions); absent or "peak" for the
    # port's weights, which keep the plain peak that their published results were measured with.
    decoding: dict = field(default_factory=dict)
    # Runtime files checked and packed beside the weights (`cpm_core.packaged_runtimes`): {"tflite-int8": {"file",
    # "sha256", "weights_sha256", "check": {...}}}; used at load only while both hashes match.
    packaged_runtimes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.skeleton.num_joints != self.spec.num_joints:
            raise ValueError(f"model card mismatch: skeleton {self.skeleton.name!r} has "
                             f"{self.skeleton.num_joints} joints but the model predicts {self.spec.num_joints}")
        if not self.name:
            self.name = self.spec.name
        method = self.decoding.get("method", "peak")
        if method not in ("peak", "dark"):
            raise ValueError(f"model card: unknown decoding method {method!r} (expected 'peak' or 'dark')")
        if method == "dark" and not float(self.decoding.get("blur_sigma", 0)) > 0:
            raise ValueError("model card: 'dark' decoding needs a positive blur_sigma (heatmap cells)")
        if "presence_midpoint" in self.decoding:
            m = self.decoding["presence_midpoint"]
            if isinstance(m, bool) or not isinstance(m, int | float) or not math.isfinite(m) or not 0 < m < 1e4:
                raise ValueError(f"model card: decoding.presence_midpoint must be a positive number of joint "
                                 f"blobs, got {m!r:.60}")
        if self.packaged_runtimes:
            validate_packaged(self.packaged_runtimes)

    @property
    def blur_sigma(self) -> float:
        """The smoothing `decode_predictions` uses for this model's heatmaps (0: plain peak)."""
        return float(self.decoding["blur_sigma"]) if self.decoding.get("method") == "dark" else 0.0

    @property
    def presence_midpoint(self) -> float:
        """The joint blobs at which this model's presence score is 0.5: measured on its training data and stored
        in the card (`decoding.presence_midpoint`), else the rule's default (`cpm_core.presence`)."""
        return float(self.decoding.get("presence_midpoint", MIDPOINT_BLOBS))

    @classmethod
    def for_spec(cls, spec: ModelSpec, skeleton: Skeleton | None = None, **kwargs) -> ModelCard:
        from cpm_core.skeleton import BUILTIN_SKELETONS

        if skeleton is None:
            matches = [s for s in BUILTIN_SKELETONS.values() if s.num_joints == spec.num_joints]
            skeleton = matches[0] if matches else generic_skeleton(spec.num_joints)
        return cls(spec=spec, skeleton=skeleton, **kwargs)

    def to_dict(self) -> dict:
        return {
            "format": "cpm-studio-model",
            "version": CARD_VERSION,
            "name": self.name,
            "description": self.description,
            "trained": self.trained,
            "spec": self.spec.to_dict(),
            "skeleton": self.skeleton.to_dict(),
            "normalisation": self.normalisation.to_dict(),
            "provenance": self.provenance,
            "metrics": self.metrics,
            **({"decoding": self.decoding} if self.decoding else {}),
            **({"packaged_runtimes": self.packaged_runtimes} if self.packaged_runtimes else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelCard:
        """A card from its JSON object; any malformed part gives one ValueError naming the part.

        Why: cards are files from elsewhere (downloaded, hand-edited); a wrong type deep inside used to escape as
        Python's own TypeError ("not all arguments converted during string formatting") naming nothing."""
        if not isinstance(d, dict):
            raise ValueError(f"a model card is a JSON object, got {type(d).__name__}")
        if d.get("format") != "cpm-studio-model":
            raise ValueError("not a CPM Studio model card (missing \"format\": \"cpm-studio-model\")")
        version = d.get("version", 0)
        if not isinstance(version, int | float) or isinstance(version, bool) or version != version:
            raise ValueError(f"model card: version must be a number, got {version!r}")
        if version > CARD_VERSION:
            raise ValueError(f"model card version {d['version']} is newer than this program understands "
                             f"({CARD_VERSION}); update CPM Studio")
        for key in ("spec", "skeleton"):
            if key not in d:
                raise ValueError(f"model card: no {key!r} section")
        for key in ("spec", "skeleton", "normalisation", "provenance", "metrics", "decoding", "packaged_runtimes"):
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise ValueError(f"model card: {key!r} must be an object, got {type(d[key]).__name__}")
        for key in ("name", "description"):
            if not isinstance(d.get(key, ""), str):
                raise ValueError(f"model card: {key!r} must be a string, got {d[key]!r:.60}")
        parts = {}
        for key, read in (("spec", ModelSpec.from_dict), ("skeleton", Skeleton.from_dict),
                          ("normalisation", Normalisation.from_dict)):
            try:
                parts[key] = read(d.get(key) or {})
            except KeyError as exc:
                raise ValueError(f"model card: {key}: missing field {exc}") from None
            except (ValueError, TypeError, AttributeError, OverflowError) as exc:
                raise ValueError(f"model card: {key}: {exc or exc.__class__.__name__}") from None
        try:
            return cls(
                spec=parts["spec"],
                skeleton=parts["skeleton"],
                normalisation=parts["normalisation"],
                name=d.get("name", ""),
                description=d.get("description", ""),
                trained=bool(d.get("trained", True)),
                provenance=dict(d.get("provenance") or {}),
                metrics=dict(d.get("metrics") or {}),
                decoding=dict(d.get("decoding") or {}),
                packaged_runtimes=dict(d.get("packaged_runtimes") or {}),
            )
        except (TypeError, OverflowError) as exc:
            raise ValueError(f"model card: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        """The card in the file `path`; ValueError naming the file for anything unreadable or malformed."""
        try:
            d = json.loads(Path(path).read_bytes().decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(f"{path}: model card is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: model card is not valid JSON ({exc})") from None
        except RecursionError:
            raise ValueError(f"{path}: model card JSON is nested too deeply") from None
        try:
            return cls.from_dict(d)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def summary(self) -> str:
        """A few human lines for the GUI and the CLI."""
        s = self.spec
        lines = [
            f"{self.name}: {s.num_joints} joints ({self.skeleton.name}), input {s.input_size}px, "
            f"{s.stages} stages, stride {s.stride}, width x{s.width:g}, {s.gflops():.1f} GFLOPs/frame",
        ]
        if not self.trained:
            lines.append("UNTRAINED: random weights, poses are meaningless until a trained model is loaded")
        if self.description:
            lines.append(self.description)
        pck = self.metrics.get("pck@0.2") or self.metrics.get("val_pck_mean")
        if pck is not None:
            ci = self.metrics.get("pck@0.2_ci95") or (None, None)
            lines.append(f"validation PCK@0.2: {float(pck):.3f}"
                         + (f" (95% interval {float(ci[0]):.2f} to {float(ci[1]):.2f})" if None not in ci else ""))
        return "\n".join(lines)
