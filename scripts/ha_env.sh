#!/usr/bin/env bash
# Create the Home Assistant core virtualenv the discovery tests run against (tests/test_home_assistant.py).
#
# homeassistant 2025.4.4 is the newest core that installs on the CPython 3.13.0 found here (2025.5 needs
# 3.13.2). Every package is pinned in scripts/requirements-ha.txt (an unpinned install pulls newer
# sub-dependencies that break the core); home-assistant-frontend is pinned with it because without it the
# core starts in recovery mode and never loads MQTT. The venv (~800 MB) lives in the cache and is reused
# while its stamp matches the pins file. Interpreter: $FACEAGENT_PY313, else pyenv's newest 3.13, else
# python3.13 on PATH, else Debian's python3.13 package when apt offers it.
#
# Usage: bash scripts/ha_env.sh        (prints the venv's hass path on its last line)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FACEAGENT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/faceagent}"
venv="$cache/venvs/home-assistant"
pins="$repo/scripts/requirements-ha.txt"
stamp="$(sha256sum "$pins" | cut -d' ' -f1)"

is_313() { [[ -n "$1" ]] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; }

find_py313() {
  if [[ -n "${FACEAGENT_PY313:-}" ]]; then echo "$FACEAGENT_PY313"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local v
    v="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13\.[0-9]+$' | sort -V | tail -1 || true)"
    if [[ -n "$v" ]]; then echo "$(pyenv root)/versions/$v/bin/python"; return; fi
  fi
  command -v python3.13 || true
}

if [[ -f "$venv/.faceagent-pins" ]] && [[ "$(cat "$venv/.faceagent-pins")" == "$stamp" ]] \
    && [[ -x "$venv/bin/hass" ]]; then
  echo "home-assistant venv up to date: $venv"
  echo "$venv/bin/hass"
  exit 0
fi

py="$(find_py313)"
if ! is_313 "$py"; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  if apt-cache show python3.13-venv >/dev/null 2>&1; then
    echo "ha_env: installing python3.13 from apt"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3.13-venv >/dev/null
    py="$(command -v python3.13 || true)"
  fi
fi
if ! is_313 "$py"; then
  echo "ha_env: no CPython 3.13 found (homeassistant 2025.4 needs 3.13); set FACEAGENT_PY313=/path/to/python3.13" >&2
  exit 1
fi

echo "creating home-assistant venv at $venv with $py ($("$py" -V))"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$pins"
"$venv/bin/python" -c 'import homeassistant.const as c, hass_frontend, paho.mqtt; print("homeassistant", c.__version__)'
echo "$stamp" >"$venv/.faceagent-pins"
echo "home-assistant venv ready: $venv"
echo "$venv/bin/hass"
