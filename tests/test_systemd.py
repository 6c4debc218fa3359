"""The systemd side: the unit's hardening score and the notify protocol over a real datagram socket."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpi_agent.paths import REPO_ROOT
from rpi_agent.runtime.notify import Notifier

UNIT = REPO_ROOT / "systemd" / "faceagent.service"
MAX_EXPOSURE = 2.0


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_exposure_is_at_most_2():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    proc = subprocess.run([analyze, "security", "--offline=true", str(UNIT)], capture_output=True, text=True,
                          check=False, timeout=60)
    match = re.search(r"Overall exposure level for faceagent\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout


def test_unit_runs_the_notify_daemon_as_designed():
    s = unit_settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"] and s["RestartPreventExitStatus"] == ["78"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["User"] == ["faceagent"] and set(s["SupplementaryGroups"][0].split()) == {"video", "gpio"}
    assert s["StateDirectory"] == ["faceagent"] and s["WorkingDirectory"] == ["/var/lib/faceagent"]
    assert s["LoadCredential"] == ["mqtt-password:/etc/faceagent/mqtt-password"]
    assert s["ExecStart"][0].endswith("faceagent run --config /etc/faceagent/config.toml")
    devices = [d.split()[0] for d in s["DeviceAllow"]]
    assert {"char-video4linux", "char-media", "/dev/dma_heap/system", "/dev/dma_heap/linux,cma",
            "/dev/gpiochip0"} <= set(devices)
    assert not any("*" in d for d in devices), "DeviceAllow= takes no globs"
    assert s["DevicePolicy"] == ["closed"] and s["CapabilityBoundingSet"] == [""]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(0.05)
    yield sock, path
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except TimeoutError:
            return messages


def test_notifier_speaks_the_protocol(notify_socket):
    sock, path = notify_socket
    clock = [100.0]
    notifier = Notifier(path, watchdog_usec=2_000_000, clock=lambda: clock[0])
    assert notifier.watchdog_interval == 1.0
    assert notifier.ready(status="starting")
    assert notifier.watchdog() is True
    assert notifier.watchdog() is False  # less than half a period since the last ping
    clock[0] += 1.0
    assert notifier.watchdog() is True
    notifier.status("9.5 fps")
    notifier.stopping()
    notifier.close()
    assert drain(sock) == ["READY=1\nSTATUS=starting", "WATCHDOG=1", "WATCHDOG=1", "STATUS=9.5 fps",
                           "STOPPING=1\nSTATUS=stopping"]


def test_notifier_abstract_socket_and_environment():
    name = f"@faceagent-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(1.0)
    try:
        notifier = Notifier.from_env({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "500000"})
        assert notifier.watchdog_interval == 0.25
        notifier.ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()
    other = Notifier.from_env({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # the watchdog belongs to another process
    off = Notifier.from_env({})
    assert not off.enabled and off.ready() is False and off.watchdog() is False


def write_config(tmp_path: Path, folder: Path, *, loop: bool) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f"[mqtt]\nenabled = false\n[logging]\nstats_interval = 0.5\n"
        f"[[cameras]]\nname = \"door\"\nsource = \"{folder}\"\nfps = 4\nhold_frames = 1\nloop = {str(loop).lower()}\n"
        f"[paths]\nstate_dir = \"{tmp_path / 'state'}\"\n"
    )
    return config


def start_daemon(config: Path, notify_path: str, *extra: str, watchdog_pid: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
    if watchdog_pid is not None:
        env["WATCHDOG_PID"] = watchdog_pid
    return subprocess.Popen([sys.executable, "-m", "rpi_agent", "run", "--config", str(config), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect_until(sock: socket.socket, proc: subprocess.Popen, marker: str, timeout: float = 60) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(marker in m for m in messages):
        messages += drain(sock)
        if proc.poll() is not None:
            messages += drain(sock)
            break
    return messages


def test_daemon_notifies_ready_status_watchdog_stopping(tmp_path, notify_socket, faces_dir, built_model):
    built_model("RFB-320")
    sock, path = notify_socket
    proc = start_daemon(write_config(tmp_path, faces_dir, loop=False), path, "--max-frames", "8")
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    messages = drain(sock)
    assert messages[0].startswith("READY=1\nSTATUS=running: door")
    assert messages[-1] == "STOPPING=1\nSTATUS=stopping" or messages[-2].startswith("STOPPING=1")
    # 8 frames at 4 fps keep the loop busy for about 2 s, so the 0.5 s ping period recurs.
    assert messages.count("WATCHDOG=1") >= 2
    assert any(re.fullmatch(r"STATUS=\d+(\.\d+)? fps, \d+ frames, \d+ events", m) for m in messages), messages
    assert "stopped after 8 frame(s)" in err


def test_daemon_stops_cleanly_on_sigterm(tmp_path, notify_socket, faces_dir, built_model):
    built_model("RFB-320")
    sock, path = notify_socket
    proc = start_daemon(write_config(tmp_path, faces_dir, loop=True), path, watchdog_pid="1")
    try:
        messages = collect_until(sock, proc, "READY=1")
        assert any(m.startswith("READY=1") for m in messages), proc.stderr.read() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    messages += drain(sock)
    assert "WATCHDOG=1" not in messages  # WATCHDOG_PID names another process
    assert any(m.startswith("STOPPING=1") for m in messages)
    assert "SIGTERM received: stopping" in err and "Traceback" not in err


def test_a_hung_pipeline_stops_the_watchdog_pings(tmp_path, notify_socket, faces_dir, built_model, monkeypatch):
    from rpi_agent.config import parse_config
    from rpi_agent.runtime.daemon import Daemon
    from rpi_agent.runtime.pipeline import Pipeline

    sock, path = notify_socket
    config = parse_config({
        "detector": {"model": str(built_model("RFB-320"))}, "mqtt": {"enabled": False},
        "cameras": [{"name": "door", "source": str(faces_dir), "fps": 20.0, "hold_frames": 1, "loop": True}],
        "paths": {"state_dir": str(tmp_path / "state")}, "logging": {"stats_interval": 0.0},
    })
    daemon = Daemon(config, notifier=Notifier(path, watchdog_usec=100_000))  # a ping every 50 ms
    hung, release = threading.Event(), threading.Event()
    step = Pipeline.step

    def hanging_step(self, frame):
        if frame.index == 3:
            hung.set()
            release.wait(30)
        return step(self, frame)

    monkeypatch.setattr(Pipeline, "step", hanging_step)
    seen: dict[str, list[str]] = {}

    def observe() -> None:
        try:
            assert hung.wait(60)
            drain(sock)  # pings sent before the hang
            time.sleep(1.0)  # twenty ping periods
            seen["while_hung"] = drain(sock)
            release.set()
            time.sleep(0.5)
            seen["after"] = drain(sock)
        finally:
            release.set()
            daemon.stop_event.set()

    observer = threading.Thread(target=observe)
    observer.start()
    assert daemon.run() == 0
    observer.join(60)
    assert "WATCHDOG=1" not in seen["while_hung"], seen["while_hung"]
    assert "WATCHDOG=1" in seen["after"]
