"""The frame-source seam."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from rpi_agent.domain import Frame


@runtime_checkable
class FrameSource(Protocol):
    """Yields frames until the source ends (end of file) or ``close()`` is called.

    A source retries transient failures itself (with backoff, logging each) and raises
    :class:`rpi_agent.errors.SourceError` only for what retrying cannot fix.
    """

    camera: str
    live: bool
    """A live feed (the daemon drops stale frames) rather than a recording (every frame is played)."""

    def frames(self) -> Iterator[Frame]:
        """Frames in capture order; returns when the source is exhausted or closed."""
        ...

    def close(self) -> None:
        """Release the device; idempotent, callable from another thread to stop ``frames()``."""
        ...
