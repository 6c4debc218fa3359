"""A real Home Assistant core for tests: its own config dir, MQTT set up, a token, REST queries, its log.

The core comes from the venv scripts/ha_env.sh builds in the cache (homeassistant 2025.4.4, pinned in
scripts/requirements-ha.txt); a missing venv is built, not skipped. The MQTT config entry is written into
``.storage`` before the first start (broker settings cannot be given in YAML); the token comes from the
onboarding API. ``restart()`` keeps the config dir, so entities, the token and the log carry over.

Example:
    >>> core = HomeAssistant(tmp_path / "ha", broker_port=1883)  # doctest: +SKIP
    >>> core.start(); core.state("binary_sensor.hall_door_face_occupancy")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from broker import free_port, wait_until

from rpi_agent.paths import REPO_ROOT

START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
DISCOVERY_PROBLEM = re.compile(
    r"(WARNING|ERROR).*\[homeassistant\.components\.mqtt[^\]]*\]|"
    r"when processing MQTT discovery message|Unable to parse JSON|Invalid config for")

CONFIGURATION = """
homeassistant:
  name: Test Home
  unit_system: metric
  time_zone: UTC
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
logger:
  default: info
"""


def hass_binary() -> Path:
    """The core's ``hass``, building its venv (scripts/ha_env.sh) when the cache lacks it."""
    done = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "ha_env.sh")], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/ha_env.sh failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def config_entries(broker_port: int) -> dict[str, object]:
    """``.storage/core.config_entries`` holding one MQTT entry (the core migrates the format on start)."""
    entry = {
        "entry_id": "faceagenttestmqtt0000000000000", "version": 1, "minor_version": 1, "domain": "mqtt",
        "title": "127.0.0.1", "data": {"broker": "127.0.0.1", "port": broker_port},
        "options": {}, "pref_disable_new_entities": False, "pref_disable_polling": False, "source": "user",
        "unique_id": None, "disabled_by": None,
    }
    return {"version": 1, "minor_version": 1, "key": "core.config_entries", "data": {"entries": [entry]}}


class HomeAssistant:
    """One core on a free loopback port, talking to the broker at ``broker_port``."""

    def __init__(self, workdir: Path, *, broker_port: int, hass: Path | None = None) -> None:
        self.dir = workdir
        self.port = free_port()
        self.hass = hass or hass_binary()
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""
        self.starts = 0
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        storage = workdir / ".storage"
        storage.mkdir(exist_ok=True)
        (storage / "core.config_entries").write_text(json.dumps(config_entries(broker_port)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the core and wait until its API answers and MQTT is loaded; returns the seconds it took."""
        began = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        with (self.dir / "stdout.log").open("ab") as out:
            self.proc = subprocess.Popen([str(self.hass), "-c", str(self.dir), "--skip-pip"], stdout=out,
                                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.starts += 1
        if not wait_until(self._answers, START_TIMEOUT, interval=0.2):
            raise RuntimeError(f"Home Assistant did not start in {START_TIMEOUT:.0f} s:\n{self.log_tail()}")
        if not self.token:
            self.token = self._onboard()
        if not wait_until(lambda: "mqtt" in self.get("/api/config")["components"], START_TIMEOUT, interval=0.2):
            raise RuntimeError(f"Home Assistant did not load MQTT:\n{self.log_tail()}")
        return time.monotonic() - began

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"Home Assistant exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/api/onboarding", timeout=2) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _onboard(self) -> str:
        client_id = f"{self.url}/"
        user = self._request("POST", "/api/onboarding/users", {
            "client_id": client_id, "name": "Test", "username": "test", "password": "test-password-123",
            "language": "en"}, auth=False)
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": user["auth_code"],
                                       "client_id": client_id}).encode()
        request = urllib.request.Request(f"{self.url}/auth/token", data=form, method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            return str(json.load(reply)["access_token"])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if the core is not gone within STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> float:
        self.stop()
        return self.start()

    # -- REST -----------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: object = None, *, auth: bool = True) -> object:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as reply:
            raw = reply.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> dict:  # type: ignore[type-arg]
        return self._request("GET", path)  # type: ignore[return-value]

    def post(self, path: str, body: object) -> object:
        return self._request("POST", path, body)

    def get_bytes(self, path: str) -> tuple[int, bytes]:
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            return exc.code, b""

    def state(self, entity_id: str) -> str | None:
        """The entity's state, or ``None`` when the core does not know it."""
        try:
            return str(self.get(f"/api/states/{entity_id}")["state"])
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def attributes(self, entity_id: str) -> dict:  # type: ignore[type-arg]
        return dict(self.get(f"/api/states/{entity_id}")["attributes"])

    def template(self, text: str) -> str:
        request = urllib.request.Request(f"{self.url}/api/template", data=json.dumps({"template": text}).encode(),
                                         method="POST", headers={"Authorization": f"Bearer {self.token}",
                                                                 "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return str(reply.read().decode())

    def template_list(self, text: str) -> list[str]:
        """A template that renders a list of strings, e.g. ``integration_entities('mqtt')``."""
        rendered = self.template(text).strip()
        return sorted(json.loads(rendered.replace("'", '"'))) if rendered.startswith("[") else []

    # -- log ------------------------------------------------------------------------------------
    def log_text(self) -> str:
        """Everything the core logged on its console, every start appended."""
        path = self.dir / "stdout.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def discovery_problems(self) -> list[str]:
        """Log lines where the core's MQTT integration warns or errs, or discovery payloads are refused."""
        return [line for line in self.log_text().splitlines() if DISCOVERY_PROBLEM.search(line)]
