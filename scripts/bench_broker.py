"""A throwaway local Mosquitto and the CPU a process has used: shared by the benchmarks that need a broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def stat_cpu_s(stat: Path) -> float:
    """User + system CPU seconds from a ``/proc/.../stat`` file (raises ``OSError`` once it is gone)."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; ``None`` once it is gone."""
    try:
        return stat_cpu_s(Path(f"/proc/{pid}/stat"))
    except OSError:
        return None


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    """Mosquitto on a free loopback port, anonymous, no persistence; ``(process, port)``, or ``None`` when
    the binary is not installed or the broker does not take connections within 10 s."""
    binary = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"{user}listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    return None
