#!/usr/bin/env python3
"""Benchmark the built models; same as `faceagent bench` (see `--help`).

Example:
    .venv/bin/python scripts/bench.py --json > bench.json
"""

from __future__ import annotations

import sys

from rpi_agent.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
