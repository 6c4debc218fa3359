"""Frame sources: where frames come from. Concrete adapters import their libraries lazily."""

from rpi_agent.sources.base import FrameSource

__all__ = ["FrameSource"]
