"""Secrets from systemd credentials or the environment, and redaction for logs.

Lookup order for a secret: a value given explicitly (a command-line override such as
``--mqtt-url``), then a file named after the credential in ``$CREDENTIALS_DIRECTORY`` (systemd
``LoadCredential=``), then the environment variable. The value is wrapped in :class:`Secret`,
whose ``repr`` and ``str`` never show it.

Example:
    >>> s = Secret("hunter2")
    >>> s, str(s), s.reveal()
    (Secret('***'), '***', 'hunter2')
    >>> redact_url("mqtt://user:pw@broker:1883")
    'mqtt://user:***@broker:1883'
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from rpi_agent.errors import ConfigError

logger = logging.getLogger(__name__)

MASK = "***"
MAX_SECRET_BYTES = 4096


class Secret:
    """A string that does not print itself; call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _read_credential(name: str, env: Mapping[str, str]) -> str | None:
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory or not name:
        return None
    path = Path(directory) / name
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()[: MAX_SECRET_BYTES + 1]
    except OSError as exc:
        raise ConfigError(f"credential {name!r}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ConfigError(f"credential {name!r}: {path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"credential {name!r}: {path} is not UTF-8 text") from None
    # Files written by `echo` or editors end in a newline that is not part of the password.
    return text.rstrip("\r\n")


def read_secret(
    *, credential: str = "", env_var: str = "", inline: str = "", environ: Mapping[str, str] | None = None
) -> Secret | None:
    """Find a secret: the explicit value first, then the credential file, then the environment variable.

    Args:
        credential: File name inside ``$CREDENTIALS_DIRECTORY``; empty to skip.
        env_var: Environment variable name; empty to skip.
        inline: A value given directly (CLI override); empty to skip.
        environ: The environment to read (default ``os.environ``), for tests.

    Returns:
        The secret, or ``None`` when none of the sources holds one.

    Raises:
        ConfigError: The credential file exists but cannot be read.
    """
    env = os.environ if environ is None else environ
    value, source = (inline or None), "the config or command line"
    if value is None:
        value, source = _read_credential(credential, env), f"credential {credential}"
    if value is None and env_var and env.get(env_var):
        value, source = env[env_var], f"environment variable {env_var}"
    if value is None:
        return None
    logger.debug("secret taken from %s", source)
    return Secret(value)


_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", url)


def redact_text(text: str, secrets: list[Secret]) -> str:
    """``text`` with every occurrence of the given secrets (and URL passwords) masked."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, MASK)
    return redact_url(text)
