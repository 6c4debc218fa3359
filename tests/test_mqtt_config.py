"""``[mqtt]`` values that can never work are refused when the config is read: one line, exit 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rpi_agent.cli import EX_CONFIG
from rpi_agent.config.mqtt import MqttConfig, host_problem, topic_problem
from rpi_agent.errors import ConfigError
from rpi_agent.sinks.mqtt import MqttSink

CAMERA = '[[cameras]]\nname = "door"\nsource = "/dev/video0"\n'

BAD = {
    "empty host label": ('host = "broker..lan"', "mqtt.host: 'broker..lan' has an empty label"),
    "300-character host": (f'host = "{"h" * 300}"', "a DNS name has at most 253"),
    "64-character label": (f'host = "{"h" * 64}.lan"', "longer than 63 characters"),
    "host with a scheme": ('host = "mqtt://broker"', "give a bare host name"),
    "NUL in the prefix": ('topic_prefix = "fa\\u0000x"', "mqtt.topic_prefix:"),
    "control character in the prefix": ('topic_prefix = "fa\\u0001x"', "U+0001"),
    "wildcard in the prefix": ('topic_prefix = "fa/+"', "mqtt.topic_prefix:"),
    "70,000-character prefix": (f'topic_prefix = "{"p" * 70000}"', "70000 bytes long"),
    "NUL in the discovery prefix": ('[mqtt.home_assistant]\ndiscovery_prefix = "ha\\u0000"',
                                    "mqtt.home_assistant.discovery_prefix:"),
}


def _check_config(tmp_path: Path, mqtt: str, *command: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.toml"
    section = mqtt if mqtt.startswith("[mqtt.") else f"[mqtt]\n{mqtt}"
    path.write_text(f"{section}\n{CAMERA}")
    args = [sys.executable, "-m", "rpi_agent", *(command or ("check-config",)), str(path)]
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_config_refuses_what_can_never_work(tmp_path, case, built_model):
    built_model("RFB-320")
    text, expected = BAD[case]
    proc = _check_config(tmp_path, text)
    assert proc.returncode == EX_CONFIG, (case, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faceagent: config error: "), proc.stderr
    assert expected in lines[0], lines[0]
    assert len(lines[0]) < 400, "the line quotes the whole bad value"


def test_run_refuses_a_bad_host_before_starting(tmp_path, built_model):
    built_model("RFB-320")
    proc = _check_config(tmp_path, 'host = "broker..lan"', "run", "--gpio-factory", "mock", "--config")
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "Traceback" not in proc.stderr and "mqtt.host" in proc.stderr


@pytest.mark.parametrize("host", ["broker.lan", "localhost", "127.0.0.1", "::1", "bücher.example", "lan.", "a-b.c"])
def test_good_hosts_pass(host):
    assert host_problem(host) is None
    assert MqttConfig(host=host).host == host


@pytest.mark.parametrize(("topic", "problem"), [
    ("", "is empty"), ("a\x00b", "NUL"), ("a/+/b", "wildcard"), ("a/#", "wildcard"), ("a\x7f", "U+007F"),
    ("a\ufffe", "U+FFFE"), ("x" * 65536, "65536 bytes"), ("é" * 40000, "80000 bytes"),
])
def test_topic_problems(topic, problem):
    found = topic_problem(topic)
    assert found is not None and problem in found
    assert topic_problem("a/+/b", wildcards=True) is None


def test_the_sink_refuses_a_prefix_that_slipped_past_the_config(tmp_path):
    config = MqttConfig()
    object.__setattr__(config, "topic_prefix", "p" * 70000)  # struct.error in paho, were it sent
    with pytest.raises(ConfigError, match=r"^mqtt\.topic_prefix: the topic 'p+' is 70\d+ bytes long"):
        MqttSink(config, cameras=["door"], outbox_dir=tmp_path, on_command=lambda *a: None, sw_version="t")
