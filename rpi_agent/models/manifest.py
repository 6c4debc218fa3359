"""The model manifest: which variants exist, their weights, input size and priors.

The manifest ships inside the package (``rpi_agent/models/manifest.toml``, also reachable as
``models/manifest.toml`` in a checkout), so an installed package finds it as well.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from rpi_agent.errors import ModelError

_SIZED = re.compile(r"^(?P<base>[A-Za-z0-9_-]+)@(?P<w>\d+)x(?P<h>\d+)$")
# Below this the last feature map (stride 64) degenerates; above it the build is pointless on a Pi.
MIN_SIDE, MAX_SIDE = 64, 2048


@dataclass(frozen=True, slots=True)
class PriorConfig:
    """Prior (anchor) configuration shared by all variants."""

    min_boxes: tuple[tuple[int, ...], ...]
    strides: tuple[int, ...]
    center_variance: float
    size_variance: float
    clip: bool = True
    size_multiple: int = 1


@dataclass(frozen=True, slots=True)
class Variant:
    """One buildable model variant.

    Attributes:
        name: Full name, e.g. ``RFB-320`` or ``RFB-320@480x360``.
        base: Name of the manifest entry it derives from (``RFB-320``).
        arch: Network architecture, ``slim`` or ``RFB``.
        weights: File name of the pretrained ``.pth`` weights.
        weights_sha256: Pinned SHA-256 of the weights file.
        width: Model input width in pixels.
        height: Model input height in pixels.
        priors: Prior configuration.
        mean: Input normalisation of the built model, ``(RGB - mean) / std``.
        std: Input normalisation std.
        landmarks: Whether the network also predicts five landmarks per face.
        folded_mean_bgr: Channel means (BGR) the weights were trained with and that the build
            folds into the graph; empty when the normalisation is ``mean``/``std`` alone.
        int8_per_channel: Quantise INT8 weights per output channel (else one scale per tensor).
        equalize: Equalise the depthwise-separable blocks' channel ranges before quantising
            (``rpi_agent.models.equalize``; the same function, better per-tensor INT8).
        calibration_scales: Fits of the calibration photos (landmark builds; empty: the default).
    """

    name: str
    base: str
    arch: str
    weights: str
    weights_sha256: str
    width: int
    height: int
    priors: PriorConfig
    mean: float
    std: float
    landmarks: bool = False
    folded_mean_bgr: tuple[float, ...] = ()
    int8_per_channel: bool = True
    equalize: bool = False
    calibration_scales: tuple[float, ...] = ()

    @property
    def num_priors(self) -> int:
        """Number of priors (output rows) at this input size."""
        total = 0
        for stride, boxes in zip(self.priors.strides, self.priors.min_boxes, strict=True):
            total += -(-self.width // stride) * -(-self.height // stride) * len(boxes)
        return total

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (input is ``[width, height]``)."""
        return {
            "name": self.name,
            "base": self.base,
            "arch": self.arch,
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "input": [self.width, self.height],
            "num_priors": self.num_priors,
            "min_boxes": [list(b) for b in self.priors.min_boxes],
            "strides": list(self.priors.strides),
            "center_variance": self.priors.center_variance,
            "size_variance": self.priors.size_variance,
            "clip": self.priors.clip,
            "mean": self.mean,
            "std": self.std,
            "landmarks": self.landmarks,
            "folded_mean_bgr": list(self.folded_mean_bgr),
            "int8_per_channel": self.int8_per_channel,
            "equalize": self.equalize,
            "calibration_scales": list(self.calibration_scales),
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """All variants plus where their weights come from."""

    variants: dict[str, Variant]
    weights: dict[str, str]
    repository: str
    commit: str
    url_template: str
    upstreams: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    weights_upstream: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Names of the base variants, in manifest order."""
        return list(self.variants)

    def variant(self, name: str, *, size: tuple[int, int] | None = None) -> Variant:
        """Resolve a variant name, optionally sized (``RFB-320@480x360``).

        Args:
            name: Base name or ``BASE@WxH``.
            size: Override ``(width, height)``; the name then gets the ``@WxH`` suffix.

        Raises:
            ModelError: Unknown name or an input size out of range.
        """
        base, sized = _split_name(name)
        if base not in self.variants:
            raise ModelError(f"unknown model variant {name!r}; known: {', '.join(self.variants)}")
        size = size or sized
        variant = self.variants[base]
        if size is None or size == (variant.width, variant.height):
            return variant
        width, height = _check_size(size, name)
        multiple = variant.priors.size_multiple
        if width % multiple or height % multiple:
            raise ModelError(f"input size of {name!r}: {variant.arch} needs sides that are multiples of {multiple}, "
                             f"e.g. {-(-width // multiple) * multiple}x{-(-height // multiple) * multiple}")
        return replace(variant, name=f"{base}@{width}x{height}", width=width, height=height)

    def weights_url(self, file_name: str) -> str:
        """Upstream download URL of a weights file at its repository's pinned commit."""
        repository, commit, template = self.upstream_of(file_name)
        return template.format(repository=repository, commit=commit, file=file_name)

    def upstream_of(self, file_name: str) -> tuple[str, str, str]:
        """``(repository, commit, url_template)`` a weights file comes from."""
        key = self.weights_upstream.get(file_name)
        if key is None:
            return self.repository, self.commit, self.url_template
        return self.upstreams[key]


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (e.g. ``480x360``) into ``(width, height)``.

    Raises:
        ModelError: Not of the form ``WxH`` or out of range.
    """
    match = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not match:
        raise ModelError(f"bad input size {text!r}; expected WIDTHxHEIGHT such as 480x360")
    return _check_size((int(match.group(1)), int(match.group(2))), text)


def _check_size(size: tuple[int, int], label: str) -> tuple[int, int]:
    width, height = size
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ModelError(f"input size of {label!r} out of range: each side must be {MIN_SIDE}..{MAX_SIDE}")
    return width, height


def _split_name(name: str) -> tuple[str, tuple[int, int] | None]:
    match = _SIZED.match(name)
    if match:
        return match.group("base"), (int(match.group("w")), int(match.group("h")))
    if "@" in name:
        raise ModelError(f"bad model name {name!r}; expected NAME or NAME@WIDTHxHEIGHT")
    return name, None


def manifest_text() -> str:
    """Raw TOML text of the packaged manifest."""
    return resources.files("rpi_agent.models").joinpath("manifest.toml").read_text(encoding="utf-8")


def load_manifest(path: Path | None = None) -> Manifest:
    """Load and validate the manifest.

    Args:
        path: A manifest file; defaults to the one shipped in the package.

    Raises:
        ModelError: The file is unreadable or inconsistent.
    """
    try:
        text = path.read_text(encoding="utf-8") if path else manifest_text()
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"cannot read model manifest {path or 'manifest.toml'}: {exc}") from exc
    try:
        return _parse(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"invalid model manifest: {exc!r}") from exc


def _prior_config(p: dict[str, Any]) -> PriorConfig:
    priors = PriorConfig(
        min_boxes=tuple(tuple(int(v) for v in boxes) for boxes in p["min_boxes"]),
        strides=tuple(int(s) for s in p["strides"]),
        center_variance=float(p["center_variance"]),
        size_variance=float(p["size_variance"]),
        clip=bool(p.get("clip", True)),
        size_multiple=int(p.get("size_multiple", 1)),
    )
    if len(priors.min_boxes) != len(priors.strides):
        raise ValueError("priors: min_boxes and strides differ in length")
    return priors


def _variant(entry: dict[str, Any], data: dict[str, Any], weights: dict[str, str],
             layouts: dict[str, PriorConfig]) -> Variant:
    width, height = (int(v) for v in entry["input"])
    norm = data["input_norms"][entry["input_norm"]] if "input_norm" in entry else data["input"]
    return Variant(
        name=entry["name"], base=entry["name"], arch=entry["arch"], weights=entry["weights"],
        weights_sha256=weights[entry["weights"]], width=width, height=height,
        priors=layouts[entry.get("priors", "default")], mean=float(norm["mean"]), std=float(norm["std"]),
        landmarks=bool(entry.get("landmarks", False)),
        folded_mean_bgr=tuple(float(v) for v in norm.get("folded_mean_bgr", ())),
        int8_per_channel=bool(entry.get("int8_per_channel", True)),
        equalize=bool(entry.get("equalize", False)),
        calibration_scales=tuple(float(v) for v in entry.get("calibration_scales", ())),
    )


def _parse(data: dict[str, Any]) -> Manifest:
    layouts = {"default": _prior_config(data["priors"])}
    layouts.update({name: _prior_config(p) for name, p in data.get("prior_layouts", {}).items()})
    weights = {name: str(entry["sha256"]).lower() for name, entry in data["weights"].items()}
    upstreams = {key: (u["repository"], u["commit"], u["url"]) for key, u in data.get("upstreams", {}).items()}
    weights_upstream = {name: str(entry["upstream"]) for name, entry in data["weights"].items() if "upstream" in entry}
    unknown = sorted(set(weights_upstream.values()) - set(upstreams))
    if unknown:
        raise ValueError(f"weights name an unknown upstream: {', '.join(unknown)}")
    variants = {entry["name"]: _variant(entry, data, weights, layouts) for entry in data["variant"]}
    up = data["upstream"]
    return Manifest(variants=variants, weights=weights, repository=up["repository"], commit=up["commit"],
                    url_template=up["url"], upstreams=upstreams, weights_upstream=weights_upstream)
