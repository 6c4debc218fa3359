"""`faceagent run` for a person at a terminal: a live status line on a TTY, plain log lines otherwise."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rpi_agent.cli.status_line import CLEAR, format_status

EVENT = re.compile(r"camera door: face \S+ (new|update|end) \(score")


@pytest.fixture
def config(tmp_path: Path, faces_dir: Path, built_model) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("5.jpg", "2.jpg", "13.jpg"):
        (folder / name).symlink_to(faces_dir / name)
    path = tmp_path / "config.toml"
    path.write_text(f'[detector]\nmodel = "{built_model("RFB-320")}"\n[mqtt]\nenabled = false\n'
                    f'[[cameras]]\nname = "door"\nsource = "{folder}"\n[paths]\nstate_dir = "{tmp_path}/state"\n')
    return path


def faceagent_run(config: Path, *, tty: bool) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)``; stdout is a pseudo-terminal when ``tty``."""
    command = [sys.executable, "-m", "rpi_agent", "run", "--config", str(config), "--gpio-factory", "mock"]
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    if not tty:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(command, stdout=follower, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    return proc.wait(60), b"".join(chunks).decode(), err


def test_status_line_format():
    assert format_status({"fps": 9.94, "faces": 2, "events": 14, "outbox": 0, "frames": 120}) == \
        "9.9 fps | 2 faces | 14 events | outbox 0 | 120 frames"
    assert "outbox" not in format_status({"fps": 1, "faces": 0, "events": 0, "outbox": None, "frames": 3})


def test_terminal_gets_a_live_status_line(config: Path):
    code, out, err = faceagent_run(config, tty=True)
    assert code == 0, err[-3000:]
    assert CLEAR in out
    # The last state of the line holds the final figures: as many events as the log lines name.
    last = out.rsplit(CLEAR, 1)[-1].strip()
    match = re.fullmatch(r"(\d+\.\d) fps \| (\d+) faces \| (\d+) events \| (\d+) frames", last)
    assert match, repr(last)
    assert int(match.group(3)) == len(EVENT.findall(err)) > 0
    assert int(match.group(4)) == 15  # 3 photos, each held min_hits + 2 = 5 frames
    assert "\033[" not in err  # the log itself stays plain


def test_pipe_gets_plain_log_lines(config: Path):
    code, out, err = faceagent_run(config, tty=False)
    assert code == 0, err[-3000:]
    assert out == "" and "\033[" not in err
    assert EVENT.search(err) and "stopped after 15 frame(s)" in err
