"""The config tree: the shipped config.toml, bad configs through the real CLI, overrides, redaction."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rpi_agent.cli import EX_CONFIG
from rpi_agent.cli.run import mqtt_url_overrides
from rpi_agent.config import AppConfig, load_config, parse_config
from rpi_agent.config.schema import apply_override, iter_fields
from rpi_agent.errors import ConfigError
from rpi_agent.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "config.toml"

CAMERA = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'


def faceagent(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "rpi_agent", *args]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_checks_ok(built_model):
    built_model("RFB-320")
    proc = faceagent("check-config", str(SHIPPED))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{SHIPPED}: OK, 1 camera(s): door (picamera)"


def _documented_tables(text: str) -> dict[str, str]:
    """Table path (``cameras[].gpio``, ``cameras[].zones.*``) → text of its block, headers commented or not."""
    blocks: dict[str, str] = {"": ""}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[\[?([A-Za-z0-9_.]+)\]\]?\s*$", line)
        if header:
            parts = header.group(1).split(".")
            current = "cameras[]" if parts[0] == "cameras" else parts[0]
            rest = parts[1:]
            if parts[0] == "cameras" and len(rest) >= 2 and rest[0] == "zones":
                rest = ["zones", "*", *rest[2:]]
            current = ".".join([current, *rest])
            blocks.setdefault(current, "")
        else:
            blocks[current] = blocks.get(current, "") + line + "\n"
    return blocks


def test_shipped_config_documents_every_option():
    blocks = _documented_tables(SHIPPED.read_text())
    missing = []
    for path, fld in iter_fields(AppConfig):
        parent, _, leaf = path.rpartition(".")
        if {path, f"{path}[]", f"{path}.*"} & blocks.keys():
            continue  # a section, documented by its own table header
        block = blocks.get(parent, "")
        if not re.search(rf"^#?\s*{re.escape(leaf)}\s*=", block, re.MULTILINE):
            missing.append(path)
        assert fld.metadata.get("doc"), f"{path} has no doc in its field metadata"
    assert missing == []


def test_shipped_config_is_the_defaults_where_active(built_model):
    built_model("RFB-320")
    config = load_config(SHIPPED)
    assert config.cameras[0].name == "door"
    assert config.detector == AppConfig().detector
    assert config.mqtt == AppConfig().mqtt


BAD = {
    "unknown key": (f"[detector]\nmodle = 'RFB-320'\n{CAMERA}", "detector.modle: unknown key"),
    "unknown nested key": (f"{CAMERA}[cameras.tracker]\nmin_hit = 3\n", "cameras[0].tracker.min_hit: unknown key"),
    "wrong type": (f"{CAMERA}[cameras.tracker]\nmin_hits = 'three'\n",
                   "cameras[0].tracker.min_hits: expected integer, got string"),
    "out of range": (f"[mqtt]\nport = 70000\n{CAMERA}", "mqtt.port: value 70000 is above the maximum 65535"),
    "bad pin": (f"{CAMERA}[cameras.gpio]\nrelay_pin = 40\n", "cameras[0].gpio.relay_pin"),
    "pin used twice": (f"{CAMERA}[cameras.gpio]\nrelay_pin = 17\nled_pin = 17\n", "cameras[0].gpio.led_pin"),
    "zone outside the frame": (f"{CAMERA}[cameras.zones.door]\npoints = [[0, 0], [1.5, 0], [1, 1]]\n",
                               "cameras[0].zones.door.points"),
    "zone with two corners": (f"{CAMERA}[cameras.zones.door]\npoints = [[0, 0], [1, 1]]\n",
                              "cameras[0].zones.door.points"),
    "zone point not a pair": (f"{CAMERA}[cameras.zones.door]\npoints = [[0, 0, 1], [1, 0], [1, 1]]\n",
                              "cameras[0].zones.door.points[0]: expected 2 items"),
    "min_score below the detector threshold": (f"{CAMERA}[cameras.filters]\nmin_score = 0.5\n",
                                               "cameras[0].filters.min_score: 0.5 is below detector.threshold 0.7"),
    "unknown zone in gpio": (f"{CAMERA}[cameras.gpio]\nrelay_pin = 17\nzones = ['hall']\n",
                             "cameras[0].gpio.zones: unknown zone 'hall'"),
    "missing model": (f"[detector]\nmodel = 'no-such-model'\n{CAMERA}", "detector.model:"),
    "missing model file": (f"[detector]\nmodel = '/nonexistent/m.tflite'\n{CAMERA}", "detector.model:"),
    "unreadable TLS file": (f"[mqtt]\ntls_ca_certs = '/nonexistent/ca.crt'\n{CAMERA}",
                            "mqtt.tls_ca_certs: /nonexistent/ca.crt: No such file or directory"),
    "camera as a single table": ("[cameras]\nname = 'door'\n",
                                 "cameras: expected array, got table (write [[cameras]] for each entry)"),
    "duplicate camera": (f"{CAMERA}{CAMERA}", "cameras[1].name: 'door' is used by another camera"),
    "choice": (f"[detector]\nresize = 'crop'\n{CAMERA}", "detector.resize: 'crop' is not one of"),
    "syntax": ("[detector\nmodel = 1\n", "TOML syntax error"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_line_and_exit_78(tmp_path, case, built_model):
    built_model("RFB-320")
    text, expected = BAD[case]
    path = write(tmp_path, text)
    for args in (("check-config", str(path)), ("run", "--config", str(path), "--gpio-factory", "mock")):
        proc = faceagent(*args)
        assert proc.returncode == EX_CONFIG, (case, args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("faceagent: config error: ")
        assert expected in lines[0], lines[0]
        assert "Traceback" not in proc.stderr


def test_unreadable_files_are_one_line(tmp_path):
    cases = ((tmp_path / "absent.toml", "config file not found"), (tmp_path, "is a directory, not a config file"))
    for path, expected in cases:
        proc = faceagent("check-config", str(path))
        assert proc.returncode == EX_CONFIG
        assert proc.stderr.strip() == f"faceagent: config error: {path}: {expected}"
    binary = write(tmp_path, "")
    binary.write_bytes(b"\xff\xfe\x00bad")
    proc = faceagent("check-config", str(binary))
    assert proc.returncode == EX_CONFIG and "not UTF-8" in proc.stderr


def test_bad_cli_overrides_exit_78(tmp_path, built_model):
    built_model("RFB-320")
    path = write(tmp_path, CAMERA)
    proc = faceagent("run", "--config", str(path), "--mqtt-url", "http://broker:1883")
    assert proc.returncode == EX_CONFIG and "--mqtt-url" in proc.stderr
    proc = faceagent("run", "--config", str(path), "--mqtt-url", "mqtt://u:hunter2@broker:99999")
    assert proc.returncode == EX_CONFIG and "hunter2" not in proc.stderr


def test_secrets_are_redacted(tmp_path, built_model):
    built_model("RFB-320")
    path = write(tmp_path, f"[mqtt]\nusername = 'cam'\npassword = 'hunter2'\n{CAMERA}")
    proc = faceagent("check-config", str(path), "--print")
    assert proc.returncode == 0, proc.stderr
    tree = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
    assert tree["mqtt"]["password"] == "***" and tree["mqtt"]["username"] == "cam"
    config = load_config(path)
    assert config.mqtt.password == "hunter2"
    for text in (repr(config), str(config), config.redacted_json(), repr(config.mqtt)):
        assert "hunter2" not in text
    wrong = write(tmp_path, f"[mqtt]\npassword = 12345\n{CAMERA}")
    proc = faceagent("check-config", str(wrong))
    assert proc.returncode == EX_CONFIG and "12345" not in proc.stderr and "mqtt.password" in proc.stderr


def test_overrides_set_nested_keys():
    config = parse_config(
        {"cameras": [{"name": "a", "source": "picamera"}]},
        overrides={"cameras[0].source": "/dev/video2", "cameras[1].name": "b", "mqtt.port": 8883},
    )
    assert [c.source for c in config.cameras] == ["/dev/video2", "picamera"]
    assert [c.name for c in config.cameras] == ["a", "b"]
    assert config.mqtt.port == 8883
    with pytest.raises(ConfigError, match=r"cameras\[3\]"):
        apply_override({"cameras": []}, "cameras[3].name", "x")


def test_defaults_only_config_has_one_picamera():
    config = parse_config({})
    assert [(c.name, c.source) for c in config.cameras] == [("camera", "picamera")]
    with pytest.raises(ConfigError, match=r"^cameras: length 0 is below the minimum 1$"):
        parse_config({"cameras": []})


def test_config_tree_is_frozen():
    config = parse_config({"cameras": [{"name": "a", "zones": {"z": {"points": [[0, 0], [1, 0], [1, 1]]}}}]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cameras[0].name = "b"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.cameras[0].zones["y"] = config.cameras[0].zones["z"]  # type: ignore[index]
    assert isinstance(config.cameras, tuple)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker", {"mqtt.host": "broker", "mqtt.port": 1883}),
        ("mqtts://broker", {"mqtt.host": "broker", "mqtt.port": 8883, "mqtt.tls": True}),
        ("mqtt://u%40x:p%3Aw@10.0.0.2:1884",
         {"mqtt.host": "10.0.0.2", "mqtt.port": 1884, "mqtt.username": "u@x", "mqtt.password": "p:w",
          "mqtt.password_credential": "", "mqtt.password_env": ""}),
    ],
)
def test_mqtt_url_overrides(url, expected):
    assert mqtt_url_overrides(url) == {"mqtt.enabled": True, **expected}


@pytest.mark.parametrize("url", ["broker:1883", "tcp://broker", "mqtt://", "mqtt://b/topic", "mqtt://b:x"])
def test_bad_mqtt_urls(url):
    with pytest.raises(ConfigError, match=r"^--mqtt-url: "):
        mqtt_url_overrides(url)


def test_unwritable_state_dir_is_a_config_error(tmp_path, built_model):
    built_model("RFB-320")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = write(tmp_path, f"[paths]\nstate_dir = '{blocker}/state'\n{CAMERA}")
    proc = faceagent("run", "--config", str(path), "--gpio-factory", "mock")
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"faceagent: config error: paths.state_dir: cannot create {blocker}/state: Not a directory")


def test_one_score_threshold_that_a_camera_may_raise():
    config = parse_config({"cameras": [{"name": "door"},
                                       {"name": "gate", "source": "picamera:1", "filters": {"min_score": 0.8}},
                                       {"name": "board", "source": "k210:/dev/ttyUSB0"}]})
    assert config.detector.threshold == 0.7
    assert [config.min_score(c) for c in config.cameras] == [0.7, 0.8, 0.7]
    lower = parse_config({"detector": {"threshold": 0.5}, "cameras": [{"name": "door"}]})
    assert lower.min_score(lower.cameras[0]) == 0.5
