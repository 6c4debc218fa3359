"""The model manifest: variants, pins, sizes, and that an installed package finds it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from rpi_agent.detection.priors import PriorSpec, generate_priors
from rpi_agent.errors import ModelError
from rpi_agent.models import load_manifest, parse_size
from rpi_agent.models.manifest import manifest_text
from rpi_agent.paths import REPO_ROOT


def _sha256sums(upstream_dir: Path) -> dict[str, str]:
    pins = {}
    for line in (upstream_dir / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        pins[name] = digest
    return pins


def test_every_variant_is_pinned_to_the_shared_checksums(upstream_dir: Path) -> None:
    manifest = load_manifest()
    sums = _sha256sums(upstream_dir)
    assert manifest.names() == ["slim-320", "RFB-320", "slim-640", "RFB-640"]
    for name in manifest.names():
        variant = manifest.variant(name)
        assert variant.weights_sha256 == sums[variant.weights], name
        assert (variant.width, variant.height) == ((320, 240) if name.endswith("320") else (640, 480))
        assert variant.arch == name.split("-")[0]


def test_prior_configuration_is_the_upstream_one() -> None:
    priors = load_manifest().variant("RFB-320").priors
    assert priors.min_boxes == ((10, 16, 24), (32, 48), (64, 96), (128, 192, 256))
    assert priors.strides == (8, 16, 32, 64)
    assert (priors.center_variance, priors.size_variance) == (0.1, 0.2)


@pytest.mark.parametrize("name", ["RFB-320", "slim-640", "RFB-320@480x360", "slim-320@333x251"])
def test_prior_count_agrees_with_the_prior_generator(name: str) -> None:
    variant = load_manifest().variant(name)
    spec = PriorSpec(width=variant.width, height=variant.height, min_boxes=variant.priors.min_boxes,
                     strides=variant.priors.strides)
    assert variant.num_priors == generate_priors(spec).shape[0]


def test_sized_variant_keeps_weights_and_changes_input() -> None:
    manifest = load_manifest()
    sized = manifest.variant("RFB-320@480x360")
    assert (sized.name, sized.base, sized.weights) == ("RFB-320@480x360", "RFB-320", "version-RFB-320.pth")
    assert (sized.width, sized.height) == (480, 360)
    assert manifest.variant("RFB-320", size=(640, 480)).name == "RFB-320@640x480"
    assert manifest.variant("RFB-320", size=(320, 240)).name == "RFB-320"


@pytest.mark.parametrize("name", ["RFB-321", "RFB-320@", "RFB-320@480", "RFB-320@10x10", "RFB-320@x@y"])
def test_bad_variant_names_are_refused(name: str) -> None:
    with pytest.raises(ModelError):
        load_manifest().variant(name)


@pytest.mark.parametrize("text", ["480", "480x", "0x240", "abcxdef", "99999x240"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ModelError):
        parse_size(text)


def test_checkout_path_is_the_packaged_manifest() -> None:
    assert (REPO_ROOT / "models" / "manifest.toml").read_text() == manifest_text()
    assert tomllib.loads(manifest_text())["upstream"]["commit"] == "dffdddda9794a50607cba8f318507a28c1c27cab"


def test_a_non_editable_install_finds_the_manifest(tmp_path: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and egg-info behind in the checkout.
    source = tmp_path / "src"
    shutil.copytree(REPO_ROOT / "rpi_agent", source / "rpi_agent", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_ROOT / name).is_file():
            shutil.copy(REPO_ROOT / name, source / name)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(source)],
                   check=True, capture_output=True)
    probe = ("import rpi_agent.models as m, rpi_agent.models.buildenv as b;"
             "print(m.__file__); print(len(m.load_manifest().names())); print('onnx2tf' in b.requirements_text())")
    out = subprocess.run([str(python), "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True)
    module_file, count, has_pins = out.stdout.split()
    assert str(env_dir) in module_file  # the installed copy, not the checkout
    assert (count, has_pins) == ("4", "True")
    assert sys.prefix not in module_file
