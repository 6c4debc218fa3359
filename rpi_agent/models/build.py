"""``faceagent models build``: orchestrates the conversion in the build venv.

This module runs in the main (runtime) venv and never imports torch or tensorflow: it
resolves the variants, makes sure the weights and the build venv are there, writes a job
file and runs ``python -m rpi_agent.models._build_worker`` in the build venv, relaying its
progress lines.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rpi_agent import paths
from rpi_agent.errors import ImageError, ModelError
from rpi_agent.models import buildenv, calibration
from rpi_agent.models.fetch import fetch_weights
from rpi_agent.models.manifest import Manifest, Variant, load_manifest

logger = logging.getLogger(__name__)

CALIB_SUBDIR = ("data", "faces")


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What one variant's build produced (read back from its build-info.json)."""

    name: str
    out_dir: Path
    info: dict[str, Any]


def default_calibration_dir() -> Path:
    """The shared face photos, ``<shared>/data/faces``.

    Raises:
        ImageError: No shared directory is available.
    """
    shared = paths.shared_dir()
    if shared is None:
        raise ImageError("no calibration images: the shared data directory is absent; pass --calib DIR")
    return shared.joinpath(*CALIB_SUBDIR)


def resolve_variants(names: Sequence[str], *, size: tuple[int, int] | None = None,
                     manifest: Manifest | None = None) -> list[Variant]:
    """Variants to build: the named ones (default all base variants), optionally resized."""
    manifest = manifest or load_manifest()
    chosen = list(names) or manifest.names()
    return [manifest.variant(name, size=size) for name in chosen]


def _package_path_dir(tmp: Path) -> Path:
    """A directory to put on the worker's PYTHONPATH holding only this package.

    Pointing PYTHONPATH at our own site-packages would drag the runtime venv's numpy 2 into
    the build venv; a link to the package directory alone works for checkouts and installs.
    """
    import rpi_agent

    root = tmp / "pkg"
    root.mkdir()
    (root / "rpi_agent").symlink_to(Path(rpi_agent.__file__).resolve().parent, target_is_directory=True)
    return root


def _jobs(variants: list[Variant], weights: dict[str, Path], models_root: Path) -> list[dict[str, Any]]:
    return [
        {"name": v.name, "arch": v.arch, "width": v.width, "height": v.height, "num_priors": v.num_priors,
         "weights": v.weights, "weights_sha256": v.weights_sha256, "weights_path": str(weights[v.weights]),
         "mean": v.mean, "std": v.std, "landmarks": v.landmarks, "folded_mean_bgr": list(v.folded_mean_bgr),
         "int8_per_channel": v.int8_per_channel, "equalize": v.equalize,
         "calibration_scales": list(v.calibration_scales),
         "out_dir": str(models_root / v.name)}
        for v in variants
    ]


def run_worker(python: Path, spec: dict[str, Any], *, echo: Callable[[str], None]) -> None:
    """Run the build worker on a job spec, relaying its stdout lines to ``echo``.

    Raises:
        ModelError: The worker failed; the message carries its one-line reason.
    """
    with tempfile.TemporaryDirectory(prefix="faceagent-job-") as tmp_name:
        tmp = Path(tmp_name)
        job_file = tmp / "job.json"
        job_file.write_text(json.dumps(spec, indent=2))
        env = dict(os.environ, PYTHONPATH=str(_package_path_dir(tmp)), TF_CPP_MIN_LOG_LEVEL="2",
                   CUDA_VISIBLE_DEVICES="", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
        cmd = [str(python), "-m", "rpi_agent.models._build_worker", str(job_file)]
        logger.debug("running %s", shlex.join(cmd))
        # stderr goes to a file: a chatty library could otherwise fill a pipe nobody drains yet.
        with (tmp / "stderr.txt").open("w+") as err, subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                echo(line.rstrip("\n"))
            status = proc.wait()
            err.seek(0)
            errors = err.read().strip().splitlines()
    if status != 0:
        reason = errors[-1] if errors else f"exit status {status}"
        for line in errors[:-1]:
            logger.debug("worker: %s", line)
        raise ModelError(f"model build failed: {reason}")


def build_models(
    names: Sequence[str] = (),
    *,
    calib_dir: Path | None = None,
    size: tuple[int, int] | None = None,
    force: bool = False,
    weights_source: str | None = None,
    echo: Callable[[str], None] = print,
    command: str | None = None,
) -> list[BuildResult]:
    """Build INT8 and FP32 TFLite models of the given variants into ``<cache>/models/<NAME>/``.

    Args:
        names: Variant names (``RFB-320``, ``slim-640``, ``RFB-320@480x360``); default all.
        calib_dir: Calibration photos; default the shared face photos.
        size: Build every named variant at this ``(width, height)`` instead.
        force: Rebuild even when the recorded inputs match (cache hit).
        weights_source: Where to fetch missing weights from (see ``fetch_weights``).
        echo: Receives each progress line.
        command: Command line recorded in build-info.json.

    Returns:
        One result per variant, in order.

    Raises:
        ModelError: Unknown variant, or the conversion failed.
        ImageError: The calibration directory is missing or holds no images.
        WeightsError: Weights missing or failing their pin.
    """
    manifest = load_manifest()
    variants = resolve_variants(names, size=size, manifest=manifest)
    calib = (calib_dir or default_calibration_dir()).expanduser().resolve()
    calibration.list_images(calib)  # fail fast, before the heavy venv starts
    fetched = fetch_weights(sorted({v.weights for v in variants}), source=weights_source, manifest=manifest)
    weights = {r.name: r.path for r in fetched}
    python = buildenv.ensure_build_env()
    models_root = paths.models_dir()
    spec = {"jobs": _jobs(variants, weights, models_root), "calib_dir": str(calib), "force": force,
            "command": command or shlex.join(["faceagent", *sys.argv[1:]])}
    echo(f"building {', '.join(v.name for v in variants)} with {python} (calibration: {calib})")
    run_worker(python, spec, echo=echo)
    results = []
    for variant in variants:
        out_dir = models_root / variant.name
        try:
            info = json.loads((out_dir / "build-info.json").read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{variant.name}: build finished without a readable build-info.json") from exc
        results.append(BuildResult(variant.name, out_dir, info))
    return results
