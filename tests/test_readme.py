"""Every command in the README's shell blocks, run as written (or named here with the test that covers it).

The newcomer's commands run verbatim: the quickstart from the checkout; ``detect photo.jpg`` and the
``run`` + ``mosquitto_sub`` pair from a scratch folder laid out like a checkout (``.venv``, ``photo.jpg``,
``../shared``). ``mqtt://localhost:1883`` is a real Mosquitto on port 1883 inside a network namespace of
the test's own (``unshare -n``), so no port of the machine is taken and nothing is rewritten. Commands
that need a Pi, root on a Pi, or are the suite itself are mapped to the test that covers them, and that
test must exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from broker import mosquitto_binary

from rpi_agent.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
RUN = ".venv/bin/faceagent run --source ../shared/data/faces --gpio-factory mock --mqtt-url mqtt://localhost:1883"
SUB = "mosquitto_sub -v -t 'faceagent/#'"
DETECT = ".venv/bin/faceagent detect photo.jpg --json"
QUICKSTART = "bash scripts/quickstart.sh"
RAN_HERE = {QUICKSTART, DETECT, RUN, SUB, "bash scripts/setup.sh", ".venv/bin/python -m pytest -k tracker",
            ".venv/bin/ruff check rpi_agent tests && .venv/bin/mypy rpi_agent"}
COVERED_ELSEWHERE = {
    "bash scripts/test.sh": ".ci/run",  # the suite itself: CI runs it
    # Root on a Pi: the steps are printed and checked, then run for real in an arm64 root under qemu.
    "sudo bash scripts/install.sh --dry-run":
        "tests/test_install.py::test_dry_run_on_a_pi_installs_everything_in_order",
    "sudo bash scripts/install.sh --models-from DIR": "tests/test_arm64.py::test_installer_result_in_arm64_root",
    # systemd itself is not running here: the unit's notify protocol is checked against the daemon.
    "sudo systemctl start faceagent && journalctl -u faceagent -f":
        "tests/test_systemd.py::test_unit_runs_the_notify_daemon_as_designed",
}


def readme_commands() -> list[str]:
    """Each line of every ```sh block, without its trailing comment."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for line in block.splitlines():
            command = re.split(r"\s{2,}#", line)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_every_readme_command_is_accounted_for():
    commands = readme_commands()
    unknown = [c for c in commands if c not in RAN_HERE and c not in COVERED_ELSEWHERE]
    assert not unknown, f"README commands no test runs: {unknown}"
    for command, where in COVERED_ELSEWHERE.items():
        path, _, name = where.partition("::")
        text = (REPO_ROOT / path).read_text()
        assert (f"def {name}(" in text) if name else command in text, (command, where)


@pytest.fixture
def checkout_like(tmp_path: Path, shared: Path, faces_dir: Path) -> Path:
    """``work/`` with ``.venv`` and ``photo.jpg``, and ``shared`` beside it, as the README assumes."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(REPO_ROOT / ".venv")
    shutil.copy(faces_dir / "2.jpg", work / "photo.jpg")
    (tmp_path / "shared").symlink_to(shared)
    return work


def test_detect_photo_as_written(checkout_like: Path):
    assert DETECT in readme_commands()
    done = subprocess.run(DETECT, shell=True, cwd=checkout_like, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert '"image": "photo.jpg"' in done.stdout and '"faces": [{"box"' in done.stdout


def namespace_script(work: Path) -> str:
    """Mosquitto on 1883, the README's subscriber, then the README's run, all inside one network namespace."""
    conf = work.parent / "mosquitto.conf"
    conf.write_text(("user root\n" if os.geteuid() == 0 else "") + "listener 1883\nallow_anonymous true\n")
    return f"""set -eu
ip link set lo up
{shlex.quote(str(mosquitto_binary()))} -c {shlex.quote(str(conf))} &
broker=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && break; sleep 0.1; done
{SUB} > ../sub.txt &
sub=$!
sleep 0.5
{RUN}
sleep 1
kill $sub $broker
"""


def test_run_example_shows_what_the_readme_promises(checkout_like: Path, tmp_path: Path):
    assert RUN in readme_commands() and SUB in readme_commands()
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.fail("unshare and ip are needed (Debian util-linux and iproute2)")
    unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state")}  # a fresh outbox, not the cache's
    env.pop("NOTIFY_SOCKET", None)
    done = subprocess.run([*unshare, "bash", "-c", namespace_script(checkout_like)], cwd=checkout_like, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [line for line in (tmp_path / "sub.txt").read_bytes().decode(errors="replace").splitlines()
              if line.startswith("faceagent/events ")]
    new = sum('"type":"new"' in e for e in events)
    end = sum('"type":"end"' in e for e in events)
    logged_new = len(re.findall(r"face \S+ new \(score", done.stderr))
    # Ends of the last photo's faces come at the stop; any the 3 s flush misses wait in the outbox.
    assert new == logged_new > 0 and 0.8 * new <= end <= new, (new, end, logged_new)
    promised = int(re.search(r"Expect about (\d+) `new` events", README.read_text()).group(1))  # type: ignore[union-attr]
    assert abs(new - promised) <= 0.1 * promised, f"README promises about {promised} new events, run gave {new}"
    frames = int(re.search(r"stopped after (\d+) frame\(s\)", done.stderr).group(1))  # type: ignore[union-attr]
    assert f"stopped after {frames} frame(s)" in README.read_text()


def test_checkout_commands_as_written(shared: Path):
    if (REPO_ROOT.parent / "shared").resolve() != shared.resolve():
        pytest.fail(f"{QUICKSTART} reads ../shared: the shared data must sit beside the checkout")
    for command in (QUICKSTART, ".venv/bin/python -m pytest -k tracker",
                    ".venv/bin/ruff check rpi_agent tests && .venv/bin/mypy rpi_agent"):
        assert command in readme_commands()
        done = subprocess.run(command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
                              check=False)
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        if command == QUICKSTART:
            table = done.stdout.splitlines()
            assert table[-3].startswith("24 image(s), ") and "annotated images are in out/quickstart/" in table[-1]
            assert len(list((REPO_ROOT / "out" / "quickstart").glob("*.jpg"))) == 24
