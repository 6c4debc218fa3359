"""``python -m rpi_agent`` is the ``faceagent`` command."""

import sys

from rpi_agent.cli import main

sys.exit(main())
