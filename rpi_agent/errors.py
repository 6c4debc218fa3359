"""Exception tree: every error also inherits the builtin it resembles.

Callers can catch ``FaceAgentError`` for everything the package raises on purpose, or the
builtin (``ValueError``, ``OSError``) when they do not care where it came from.
"""


class FaceAgentError(Exception):
    """Root of every error faceagent raises on purpose; its message is one line for the user."""


class ConfigError(FaceAgentError, ValueError):
    """The configuration (file, override or CLI argument) is invalid."""


class ModelError(FaceAgentError, ValueError):
    """A model file is missing, unreadable, not a TFLite model, or does not fit the priors."""


class WeightsError(FaceAgentError, ValueError):
    """Pretrained weights are missing or fail their SHA-256 pin."""


class ImageError(FaceAgentError, ValueError):
    """An image cannot be read or decoded."""


class SourceError(FaceAgentError, OSError):
    """A frame source failed (camera, stream, file, serial port)."""


class RuntimeMissingError(FaceAgentError, ImportError):
    """A required runtime library is not installed; the message says how to install it."""


class DatasetError(FaceAgentError, ValueError):
    """An evaluation data set (images, ground truth, predictions) is missing or malformed."""


class ProtocolError(FaceAgentError, ValueError):
    """A device sent a message that breaks its protocol (e.g. a malformed K210 serial line)."""


class GpioError(FaceAgentError, OSError):
    """GPIO pins cannot be claimed (no pin factory, pin busy, not a Raspberry Pi)."""
