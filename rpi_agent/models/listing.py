"""``faceagent models list``: which variants exist and which are built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rpi_agent import paths
from rpi_agent.errors import ModelError
from rpi_agent.models.manifest import Manifest, Variant, load_manifest


def _built_variants(models_root: Path, manifest: Manifest) -> list[Variant]:
    """Sized variants (``NAME@WxH``) found built in the cache, sorted by name."""
    found = []
    if models_root.is_dir():
        for entry in sorted(models_root.iterdir()):
            if "@" not in entry.name or not entry.is_dir():
                continue
            try:
                found.append(manifest.variant(entry.name))
            except ModelError:
                continue  # a stray folder is not a model; list only what parses
    return found


def _entry(variant: Variant, models_root: Path) -> dict[str, Any]:
    out_dir = models_root / variant.name
    int8 = out_dir / f"{variant.name}-int8.tflite"
    fp32 = out_dir / f"{variant.name}-fp32.tflite"
    onnx = out_dir / f"{variant.name}.onnx"
    info_path = out_dir / "build-info.json"
    built_at = None
    if info_path.is_file():
        try:
            built_at = json.loads(info_path.read_text()).get("built_at")
        except ValueError:
            built_at = None
    return {
        "name": variant.name,
        "int8": str(int8) if int8.is_file() else None,
        "fp32": str(fp32) if fp32.is_file() else None,
        "onnx": str(onnx) if onnx.is_file() else None,
        "input": [variant.width, variant.height],
        "arch": variant.arch,
        "weights": variant.weights,
        "num_priors": variant.num_priors,
        "int8_bytes": int8.stat().st_size if int8.is_file() else None,
        "built_at": built_at,
    }


def list_models(*, manifest: Manifest | None = None, models_root: Path | None = None) -> list[dict[str, Any]]:
    """Every manifest variant plus sized variants built in the cache.

    Returns:
        ``[{"name": "RFB-320", "int8": path or None, "fp32": path or None, "onnx": ...,
        "input": [width, height], "arch": ..., "weights": ..., "num_priors": ...,
        "int8_bytes": ..., "built_at": ...}, ...]``
    """
    manifest = manifest or load_manifest()
    root = models_root or paths.models_dir()
    variants = [manifest.variants[name] for name in manifest.names()] + _built_variants(root, manifest)
    return [_entry(v, root) for v in variants]


def model_path(name: str, *, kind: str = "int8", models_root: Path | None = None) -> Path | None:
    """Path of a built model file (``kind`` is ``int8``, ``fp32`` or ``onnx``), or None if not built."""
    variant = load_manifest().variant(name)
    root = models_root or paths.models_dir()
    suffix = {"int8": "-int8.tflite", "fp32": "-fp32.tflite", "onnx": ".onnx"}[kind]
    path = root / variant.name / f"{variant.name}{suffix}"
    return path if path.is_file() else None
