"""faceagent: edge face detection for Raspberry Pi and K210 boards."""

__version__ = "0.1.0"
