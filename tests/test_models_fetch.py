"""`faceagent models fetch`: copying, downloading and refusing weights by their SHA-256 pin."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpi_agent.errors import WeightsError
from rpi_agent.models import load_manifest
from rpi_agent.models.fetch import fetch_weights, sha256_file

RFB = "version-RFB-320.pth"


def _faceagent(*args: str, cache: Path, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "FACEAGENT_WEIGHTS_DIR"}
    env.update({"FACEAGENT_CACHE_DIR": str(cache), **(extra_env or {})})
    return subprocess.run([sys.executable, "-m", "rpi_agent", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def corrupt_dir(tmp_path: Path, upstream_dir: Path) -> Path:
    """A weights folder whose RFB-320 file has one byte flipped."""
    folder = tmp_path / "corrupt"
    folder.mkdir()
    data = bytearray((upstream_dir / RFB).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / RFB).write_bytes(bytes(data))
    return folder


@pytest.fixture
def http_base(upstream_dir: Path, tmp_path: Path) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 serving a copy of the upstream weights."""
    served = tmp_path / "served"
    (served / "models" / "pretrained").mkdir(parents=True)
    shutil.copy(upstream_dir / RFB, served / "models" / "pretrained" / RFB)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *_args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/models/pretrained"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_copies_and_verifies_all_weights_from_a_folder(tmp_path: Path, upstream_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    results = fetch_weights(source=upstream_dir, dest=tmp_path / "w")
    manifest = load_manifest()
    # A folder source gives the files it holds: here the four Ultra-Light ones.
    assert [r.name for r in results] == [n for n in manifest.weights if n.startswith("version-")]
    for r in results:
        assert r.path.parent == tmp_path / "w"
        assert sha256_file(r.path) == manifest.weights[r.name] == r.sha256
    # Without a named source the verified cache copy is used: no download.
    monkeypatch.delenv("FACEAGENT_WEIGHTS_DIR", raising=False)
    (again,) = fetch_weights([RFB], dest=tmp_path / "w")
    assert again.origin == "cache"


def test_a_bad_named_source_is_refused_even_with_a_good_cache(tmp_path: Path, upstream_dir: Path,
                                                              corrupt_dir: Path) -> None:
    dest = tmp_path / "w"
    fetch_weights([RFB], source=upstream_dir, dest=dest)
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        fetch_weights([RFB], source=corrupt_dir, dest=dest)
    assert sha256_file(dest / RFB) == load_manifest().weights[RFB]  # the good copy is untouched


def test_a_hash_mismatch_is_refused_and_nothing_is_kept(tmp_path: Path, corrupt_dir: Path) -> None:
    dest = tmp_path / "w"
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        fetch_weights([RFB], source=corrupt_dir, dest=dest)
    assert not (dest / RFB).exists()
    assert not [p for p in dest.rglob("*") if p.is_file()]


def test_cli_mismatch_is_one_line_and_non_zero(tmp_path: Path, corrupt_dir: Path) -> None:
    proc = _faceagent("models", "fetch", RFB, "--from", str(corrupt_dir), cache=tmp_path / "cache")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("faceagent: error: weights version-RFB-320.pth")
    assert "SHA-256 mismatch" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_fetches_from_the_environment_variable(tmp_path: Path, upstream_dir: Path) -> None:
    cache = tmp_path / "cache"
    proc = _faceagent("models", "fetch", RFB, cache=cache, extra_env={"FACEAGENT_WEIGHTS_DIR": str(upstream_dir)})
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(cache / "weights" / RFB) == load_manifest().weights[RFB]


def test_cli_fetches_from_the_config_weights_dir(tmp_path: Path, corrupt_dir: Path, upstream_dir: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nweights_dir = "{upstream_dir}"\n')
    cache = tmp_path / "cache"
    proc = _faceagent("models", "fetch", RFB, "--config", str(config), cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert sha256_file(cache / "weights" / RFB) == load_manifest().weights[RFB]
    # --from wins over the config.
    proc = _faceagent("models", "fetch", RFB, "--config", str(config), "--from", str(corrupt_dir),
                      cache=tmp_path / "cache2")
    assert proc.returncode == 1 and "SHA-256 mismatch" in proc.stderr


def test_cli_refuses_a_missing_source_folder(tmp_path: Path) -> None:
    proc = _faceagent("models", "fetch", "--from", str(tmp_path / "nope"), cache=tmp_path / "cache")
    assert proc.returncode == 78
    assert "not a directory" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_file_in_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        fetch_weights([RFB], source=tmp_path, dest=tmp_path / "w")


def test_downloads_over_http_and_verifies(tmp_path: Path, http_base: str) -> None:
    (result,) = fetch_weights([RFB], source=http_base, dest=tmp_path / "w")
    assert result.origin == f"{http_base}/{RFB}"
    assert sha256_file(result.path) == load_manifest().weights[RFB]


def test_http_404_is_a_weights_error(tmp_path: Path, http_base: str) -> None:
    with pytest.raises(WeightsError, match="HTTP 404"):
        fetch_weights(["version-slim-320.pth"], source=http_base, dest=tmp_path / "w")


def test_file_url_with_a_corrupt_copy_is_refused(tmp_path: Path, corrupt_dir: Path) -> None:
    with pytest.raises(WeightsError, match="SHA-256 mismatch"):
        fetch_weights([RFB], source=corrupt_dir.as_uri(), dest=tmp_path / "w")


def test_default_source_is_the_pinned_upstream_commit() -> None:
    manifest = load_manifest()
    url = manifest.weights_url(RFB)
    assert url == ("https://raw.githubusercontent.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB/"
                   f"dffdddda9794a50607cba8f318507a28c1c27cab/models/pretrained/{RFB}")
