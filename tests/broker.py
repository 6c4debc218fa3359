"""A real Mosquitto for tests: started from its binary on free loopback ports with its own config.

Three listeners: anonymous (``port``), password file (``auth_port``), and TLS with a client
certificate plus password (``tls_port``); the last two apply an ACL (``faceagent/#`` and
``homeassistant/#`` only). Certificates (a CA, the server, a client, and an
unrelated CA for the wrong-CA test) are made with the ``openssl`` command line. ``stop()`` and
``start()`` reuse the same ports so clients can reconnect after an outage; persistence keeps
subscribers' sessions across the restart.

Example:
    >>> broker = Broker(tmp_path, certs=make_certs(tmp_path / "pki"))  # doctest: +SKIP
    >>> broker.start()  # doctest: +SKIP
    >>> broker.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

USERNAME = "faceagent"
PASSWORD = "correct horse battery"
START_TIMEOUT = 10.0


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary (often in /usr/sbin, which may not be on PATH)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: object, timeout: float, *, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():  # type: ignore[operator]
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


@dataclass(frozen=True)
class Certs:
    """PEM files: ``ca`` signs ``server`` and ``client``; ``other_ca`` signs nothing we use."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}", cwd=directory)
    return cert, key


def _make_leaf(directory: Path, name: str, ca: tuple[Path, Path], extensions: str) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]), "-CAcreateserial",
             "-out", str(cert), "-days", "2", "-extfile", str(ext), cwd=directory)
    return cert, key


def make_certs(directory: Path) -> Certs:
    """Generate a CA, a server certificate for 127.0.0.1/localhost, a client one, and another CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(directory, "test-ca")
    server = _make_leaf(directory, "server", ca, "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                        "extendedKeyUsage=serverAuth\n")
    client = _make_leaf(directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    other = _make_ca(directory, "other-ca")
    return Certs(ca[0], server[0], server[1], client[0], client[1], other[0])


class Broker:
    """One mosquitto process with an anonymous, a password and a TLS listener on 127.0.0.1."""

    def __init__(self, workdir: Path, *, certs: Certs, extra_config: str = "") -> None:
        self.extra_config = extra_config
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port, self.auth_port, self.tls_port = free_port(), free_port(), free_port()
        self.certs = certs
        self.log_file = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary = binary
        self.password_file = workdir / "passwd"
        subprocess.run(["mosquitto_passwd", "-b", "-c", str(self.password_file), USERNAME, PASSWORD],
                       check=True, capture_output=True, timeout=30)
        # The authenticated listeners allow the user only its own topics and Home Assistant's.
        self.acl_file = workdir / "acl"
        self.acl_file.write_text(f"user {USERNAME}\ntopic readwrite faceagent/#\ntopic readwrite homeassistant/#\n")
        self.config_file = workdir / "mosquitto.conf"
        self.config_file.write_text(self._config())

    def _config(self) -> str:
        run_as = "user root\n" if os.geteuid() == 0 else ""
        return (
            f"{run_as}per_listener_settings true\n"
            f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\n"
            f"log_dest file {self.log_file}\nlog_type all\nconnection_messages true\n"
            f"listener {self.port} {self.host}\nallow_anonymous true\n"
            f"listener {self.auth_port} {self.host}\nallow_anonymous false\npassword_file {self.password_file}\n"
            f"acl_file {self.acl_file}\n"
            f"listener {self.tls_port} {self.host}\nallow_anonymous false\npassword_file {self.password_file}\n"
            f"acl_file {self.acl_file}\n"
            f"cafile {self.certs.ca}\ncertfile {self.certs.server_cert}\nkeyfile {self.certs.server_key}\n"
            "require_certificate true\n"
            f"{self.extra_config}"
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start mosquitto and wait until every listener accepts connections."""
        if self.running:
            return
        self.proc = subprocess.Popen([self.binary, "-c", str(self.config_file)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        ports = (self.port, self.auth_port, self.tls_port)
        if not wait_until(lambda: all(self._accepts(p) for p in ports), START_TIMEOUT):
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None and \
                self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {err} {self.log_tail()}")

    def _accepts(self, port: int) -> bool:
        if not self.running:
            return False
        try:
            with socket.create_connection((self.host, port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop gracefully (SIGTERM: sessions are saved) and wait for the process to end."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class V311OnlyProxy:
    """A TCP proxy in front of mosquitto that plays a broker without MQTT 5.

    A CONNECT with protocol level 5 gets the MQTT 3.1.1 refusal ``CONNACK`` return code 1
    (unacceptable protocol version) and the socket is closed; any other CONNECT is passed on to
    the real broker byte for byte. ``refused`` counts the refusals. With ``refuse_v5=False`` it
    passes MQTT 5 on too, until set to True; :meth:`drop` closes every open connection.
    """

    def __init__(self, target_host: str, target_port: int, *, refuse_v5: bool = True) -> None:
        import threading

        self.target = (target_host, target_port)
        self.refuse_v5 = refuse_v5
        self.refused = 0
        self._open: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept_loop)

    def _spawn(self, target: object, *args: object) -> None:
        import threading

        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    @staticmethod
    def _recv_exact(conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                return b""
            data += chunk
        return data

    def _read_connect(self, conn: socket.socket) -> bytes:
        """The first packet: fixed header byte, variable-length remaining length, body."""
        head = self._recv_exact(conn, 1)
        length, shift, raw = 0, 0, b""
        while head:
            byte = self._recv_exact(conn, 1)
            if not byte:
                return b""
            raw += byte
            length |= (byte[0] & 0x7F) << shift
            shift += 7
            if not byte[0] & 0x80:
                body = self._recv_exact(conn, length)
                return head + raw + body if body else b""
        return b""

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = self._read_connect(conn)
            # Fixed header, remaining length, then 0x00 0x04 "MQTT" and the protocol level byte.
            level_at = head.find(b"\x00\x04MQTT") + 6
            if not head or level_at < 6 or len(head) <= level_at:
                return
            if head[level_at] == 5 and self.refuse_v5:
                self.refused += 1
                conn.sendall(b"\x20\x02\x00\x01")
                return
            with socket.create_connection(self.target) as upstream:
                self._open += [conn, upstream]
                upstream.sendall(head)
                self._spawn(self._pipe, upstream, conn)
                self._pipe(conn, upstream)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        # Either side may close at any moment; that just ends the pipe.
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def drop(self) -> None:
        """Cut every connection passed on so far (as a network failure would)."""
        opened, self._open = self._open, []
        for sock in opened:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self.drop()
        self._server.close()
