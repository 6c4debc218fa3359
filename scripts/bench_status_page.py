"""The status page part of ``bench_daemon.py --status``: a watching viewer, and what an unwatched page costs.

Kept apart so ``bench_daemon.py`` stays within the 400-line module limit; nothing else uses it.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from collections.abc import Callable
from typing import Any

STATUS_MODES = ("off", "idle", "watched")
VIEW_INTERVAL = 0.5  # seconds between a watching page's fetches (its refresh is 1 s; this is twice as busy)


def view_page(port: int, camera: str, done: Callable[[], bool], views: list[int]) -> None:
    """What an open page does: the JSON and the latest frame, every half second until ``done()``."""
    while not done():
        try:
            for path in ("api/status", f"frame/{camera}.jpg"):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/{path}", timeout=5) as reply:
                    reply.read()
        except OSError:  # the page closed under the last fetch: the run is over
            return
        views[0] += 1
        time.sleep(VIEW_INTERVAL)


def board_frame_us(calls: int = 20000) -> float:
    """Microseconds the frame loop spends handing one frame to an unwatched status page (no events)."""
    import numpy as np

    from rpi_agent.domain import Frame, FrameResult, TrackedFace
    from rpi_agent.status import StatusBoard

    board = StatusBoard(["bench"])
    faces = tuple(TrackedFace(id=str(k), camera="bench", box=(10.0 * k, 10.0, 10.0 * k + 40, 60.0), score=0.9,
                              top_score=0.9, area=2000.0) for k in range(3))
    result = FrameResult(Frame("bench", 0, 0.0, np.zeros((480, 640, 3), np.uint8), 640, 480), faces, (), {})
    start = time.perf_counter()
    for _ in range(calls):
        board.frame(result, ms={"total": 2.0, "sinks": 0.5})
    return round((time.perf_counter() - start) / calls * 1e6, 2)


def status_report(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Median fps of each status page mode, their ratios to "off", and the cost of an unwatched page."""
    fps = {mode: statistics.median(r["fps"] for r in runs[f"status_{mode}"]) for mode in STATUS_MODES}
    board_us = board_frame_us()
    return {
        "fps": fps, "fps_rounds": {mode: [r["fps"] for r in runs[f"status_{mode}"]] for mode in STATUS_MODES},
        "frame_loop_fps": {mode: statistics.median(r["frame_loop_fps"] for r in runs[f"status_{mode}"])
                           for mode in STATUS_MODES},
        "page_views_watched": [r["page_views"] for r in runs["status_watched"]],
        "idle_vs_off_fps": round(fps["idle"] / fps["off"], 3),
        "watched_vs_off_fps": round(fps["watched"] / fps["off"], 3),
        "peak_rss_mb": {mode: max(r["peak_rss_mb"] for r in runs[f"status_{mode}"]) for mode in STATUS_MODES},
        "board_frame_us": board_us, "board_share_of_frame": round(board_us * 1e-6 * fps["off"], 5),
    }
