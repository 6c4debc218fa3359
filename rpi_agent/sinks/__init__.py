"""Event sinks: where results go (MQTT, GPIO). Concrete adapters import their libraries lazily."""

from rpi_agent.sinks.base import EventSink

__all__ = ["EventSink"]
