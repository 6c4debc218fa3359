"""The event-sink seam."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from rpi_agent.domain import FrameResult


@runtime_checkable
class EventSink(Protocol):
    """Receives every pipeline result, in order, on the daemon's main thread."""

    def publish(self, result: FrameResult) -> None:
        """Act on one frame's result; must not block the pipeline for long."""
        ...

    def close(self) -> None:
        """Flush and release resources; idempotent; must leave outputs in their safe state."""
        ...
