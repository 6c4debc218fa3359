"""Fetch the pretrained weights into the cache and verify their SHA-256 pins.

Sources, first match wins: an explicit ``source`` (a directory or a base URL), the
``FACEAGENT_WEIGHTS_DIR`` environment variable, then the upstream repository at the pinned
commit (each weights file from its own family's repository). A named source is always copied
and checked; the download is skipped when the cache already holds a file with the pinned hash.
A folder is one family's: a file it lacks is taken from the cache when verified there.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rpi_agent import paths
from rpi_agent.errors import WeightsError
from rpi_agent.models.manifest import Manifest, load_manifest

logger = logging.getLogger(__name__)

WEIGHTS_ENV = "FACEAGENT_WEIGHTS_DIR"
_CHUNK = 1 << 16
_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class FetchResult:
    """Outcome for one weights file."""

    name: str
    path: Path
    sha256: str
    origin: str  # "cache", a directory, or a URL


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_source(source: str | Path | None) -> str | None:
    """The effective weights source: explicit, else ``$FACEAGENT_WEIGHTS_DIR``, else None (upstream)."""
    if source:
        return str(source)
    return os.environ.get(WEIGHTS_ENV) or None


def fetch_weights(
    names: Iterable[str] | None = None,
    *,
    source: str | Path | None = None,
    dest: Path | None = None,
    manifest: Manifest | None = None,
) -> list[FetchResult]:
    """Make the weights files available in the cache, verified.

    Args:
        names: Weights file names (``version-RFB-320.pth``); default all in the manifest (for
            a folder source: all that the folder holds).
        source: A directory holding the files, or a base URL (``http://``, ``https://``,
            ``file://``) the file names are appended to. Default: see module docstring.
        dest: Target directory; default ``<cache>/weights``.
        manifest: The manifest to take pins from; default the packaged one.

    Returns:
        One result per file, in the order asked.

    Raises:
        WeightsError: A file is missing at the source, cannot be downloaded, or its SHA-256
            does not match the pin. Nothing unverified is left in ``dest``.
    """
    manifest = manifest or load_manifest()
    dest = dest or paths.weights_dir()
    src = resolve_source(source)
    wanted = list(names) if names is not None else _default_names(src, manifest)
    results = []
    for name in wanted:
        if name not in manifest.weights:
            raise WeightsError(f"unknown weights file {name!r}; known: {', '.join(manifest.weights)}")
        results.append(_fetch_one(name, manifest.weights[name], src=src, dest=dest, manifest=manifest))
    return results


def _default_names(src: str | None, manifest: Manifest) -> list[str]:
    if src is None or "://" in src:
        return list(manifest.weights)
    folder = Path(src).expanduser()
    present = [name for name in manifest.weights if (folder / name).is_file()]
    if not present:
        raise WeightsError(f"{folder} holds none of the weights files ({', '.join(manifest.weights)})")
    return present


def _fetch_one(name: str, expected: str, *, src: str | None, dest: Path, manifest: Manifest) -> FetchResult:
    target = dest / name
    if src is not None and "://" not in src and not (Path(src).expanduser() / name).exists() \
            and target.is_file() and sha256_file(target) == expected:
        logger.debug("weights %s not in %s; using the verified copy in %s", name, src, dest)
        return FetchResult(name, target, expected, "cache")
    # A named source is always checked (a user pointing at a folder wants to hear that its file is
    # bad); the upstream download is skipped when the cache already holds the verified file.
    if src is None and target.is_file() and sha256_file(target) == expected:
        logger.debug("weights %s already verified in %s", name, dest)
        return FetchResult(name, target, expected, "cache")
    dest.mkdir(parents=True, exist_ok=True)
    origin = _origin(name, src, manifest)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
        staged = Path(tmp) / name
        if "://" in origin:
            _download(origin, staged)
        else:
            _copy(Path(origin), staged)
        actual = sha256_file(staged)
        if actual != expected:
            raise WeightsError(
                f"weights {name} from {origin}: SHA-256 mismatch (got {actual[:16]}..., "
                f"expected {expected[:16]}...); refusing to use it"
            )
        os.replace(staged, target)
    logger.info("weights %s verified (sha256 %s) from %s", name, expected[:12], origin)
    return FetchResult(name, target, expected, origin)


def _origin(name: str, src: str | None, manifest: Manifest) -> str:
    if src is None:
        return manifest.weights_url(name)
    if "://" in src:
        return src.rstrip("/") + "/" + name
    return str(Path(src).expanduser() / name)


def _copy(path: Path, staged: Path) -> None:
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        shutil.copyfile(path, staged)
    except OSError as exc:
        raise WeightsError(f"cannot copy weights {path}: {exc.strerror or exc}") from exc


def _download(url: str, staged: Path) -> None:
    logger.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, staged.open("wb") as out:
            shutil.copyfileobj(resp, out, _CHUNK)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsError(f"cannot download {url}: {reason}") from exc
