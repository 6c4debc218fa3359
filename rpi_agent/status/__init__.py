"""The live status page: what each camera sees, its timings and states, and the last events.

:class:`StatusBoard` holds references the frame loop hands over; :class:`StatusServer` serves them
(standard library ``http.server`` on its own thread). Off unless ``[status] enabled = true``.
"""

from rpi_agent.status.board import StatusBoard
from rpi_agent.status.server import StatusServer, resolve_token

__all__ = ["StatusBoard", "StatusServer", "resolve_token"]
