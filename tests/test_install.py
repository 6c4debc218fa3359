"""scripts/install.sh off a Pi: its dry run shows every step and changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from rpi_agent.paths import REPO_ROOT, models_dir

SCRIPT = REPO_ROOT / "scripts" / "install.sh"


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=120)


def commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


def index_of(lines: list[str], pattern: str) -> int:
    for i, line in enumerate(lines):
        if re.search(pattern, line):
            return i
    raise AssertionError(f"no step matches {pattern!r} in:\n" + "\n".join(lines))


def test_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


def test_dry_run_on_a_pi_installs_everything_in_order():
    proc = install("--dry-run")
    assert proc.returncode == 0, proc.stderr
    steps = commands(proc.stdout)
    order = [
        r"apt-get install .*python3-venv.* python3-picamera2 python3-lgpio",
        r"useradd --system .*--shell /usr/sbin/nologin .* faceagent$",
        r"usermod --append --groups video,gpio faceagent",
        r"pip wheel --no-deps .* " + re.escape(str(REPO_ROOT)) + "$",
        r"python3 -m venv --system-site-packages /opt/faceagent/venv",
        r"/opt/faceagent/venv/bin/pip install .*--constraint .*pi-constraints.txt .*faceagent-.*\.whl",
        r"install -m 0640 .*config.toml /etc/faceagent/config.toml",
        r"install -m 0600 /dev/null /etc/faceagent/mqtt-password",
        r"chown -R faceagent:faceagent /var/lib/faceagent",
        r"install -m 0644 .*systemd/faceagent.service /etc/systemd/system/faceagent.service",
        r"systemctl enable faceagent.service",
        r"FACEAGENT_CACHE_DIR=/var/lib/faceagent /opt/faceagent/venv/bin/faceagent check-config "
        r"/etc/faceagent/config.toml",
    ]
    positions = [index_of(steps, pattern) for pattern in order]
    assert positions == sorted(positions)
    assert "detector.model auto: RFB-landmark-320 on a Pi 4, retinaface-mnet-640 on a Pi 5" in proc.stdout
    assert "no model copied: build it on a PC (faceagent models build RFB-landmark-320 retinaface-mnet-640)" \
        in proc.stdout


def test_real_install_needs_root():
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv is missing: cannot drop to an ordinary user")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        prefix = []
    proc = subprocess.run([*prefix, "bash", str(SCRIPT)], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "install: error: run as root (sudo bash scripts/install.sh), or try --dry-run"


def test_dry_run_into_a_root_changes_nothing(tmp_path, built_model):
    built_model("RFB-320")
    root = tmp_path / "root"
    root.mkdir()
    proc = install("--dry-run", "--root", str(root), "--no-pi-steps", "--models-from", str(models_dir() / "RFB-320"))
    assert proc.returncode == 0, proc.stderr
    assert list(root.iterdir()) == []
    steps = commands(proc.stdout)
    # Every command that runs on the target runs inside the root; files are written under it.
    for step in steps:
        if step.startswith(("apt-get", "env ", "sh ", "useradd", "usermod", "python3", "chown", "chgrp")):
            pytest.fail(f"ran outside the root: {step}")
    assert any(s.startswith(f"chroot {root} python3 -m venv --system-site-packages") for s in steps)
    assert any(s == f"systemctl --root={root} enable faceagent.service" for s in steps)
    assert any(re.fullmatch(rf"cp .*RFB-320-int8\.tflite {root}/var/lib/faceagent/models/RFB-320/", s)
               for s in steps), steps
    assert "skipped (Pi only): apt-get install python3-picamera2" in proc.stdout
    assert not any("python3-picamera2" in s for s in steps)
    assert not any("systemctl restart" in s or "systemctl start" in s for s in steps)


def test_bad_options_are_one_line(tmp_path):
    for args, message in (
        (("--frobnicate",), "unknown option --frobnicate (see --help)"),
        (("--root", str(tmp_path / "absent")), f"--root {tmp_path / 'absent'}: no such directory"),
        (("--wheel", str(tmp_path / "x.whl")), f"--wheel {tmp_path / 'x.whl'}: no such file"),
    ):
        proc = install("--dry-run", *args)
        assert proc.returncode == 1
        assert proc.stderr.strip() == f"install: error: {message}"


def test_help_lists_every_option():
    proc = install("--help")
    assert proc.returncode == 0
    handled = set(re.findall(r"^\s+(--[a-z-]+)\)", SCRIPT.read_text(), re.MULTILINE))
    documented = set(re.findall(r"^\s+(--[a-z-]+)", proc.stdout, re.MULTILINE))
    assert handled - {"--help"} <= documented


def test_unit_and_installer_agree_on_paths():
    unit = (REPO_ROOT / "systemd" / "faceagent.service").read_text()
    script = SCRIPT.read_text()
    venv = re.search(r"^VENV=\$PREFIX/(\S+)", script, re.MULTILINE)
    prefix = re.search(r"^PREFIX=(\S+)", script, re.MULTILINE)
    assert venv and prefix
    assert f"ExecStart={prefix.group(1)}/{venv.group(1)}/bin/faceagent run" in unit
    assert "Environment=FACEAGENT_CACHE_DIR=/var/lib/faceagent" in unit and "STATE=/var/lib/faceagent" in script


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_installed_unit_file_is_valid_syntax(tmp_path):
    # `verify` also checks that ExecStart exists, which only holds after an install: accept only that complaint.
    proc = subprocess.run(["systemd-analyze", "verify", str(REPO_ROOT / "systemd" / "faceagent.service")],
                          capture_output=True, text=True, check=False, timeout=60)
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if line.strip() and "is not executable: No such file or directory" not in line]
    assert problems == [], problems
