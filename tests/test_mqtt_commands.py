"""Commands on ``<prefix>/<camera>/<feature>/set``: good ones reach the daemon, bad ones are refused."""

from __future__ import annotations

import logging
import threading

from broker_fixtures import WAIT, sink_config, wait_until

from rpi_agent.sinks.commands import Command, DetectCommand

DETECT_SET = "faceagent/door/detect/set"
DETECT_STATE = "faceagent/door/detect/state"
UNLOCK_SET = "faceagent/door/unlock/set"


class Daemon:
    """Stands in for the daemon's command handler and records what it was asked."""

    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.fail = fail
        self.called = threading.Event()

    def __call__(self, camera: str, feature: str, command: Command) -> str | None:
        self.calls.append((camera, feature, str(command)))
        self.called.set()
        if self.fail:
            raise RuntimeError("handler broke")
        return command.state if isinstance(command, DetectCommand) else "UNLOCKED"


def _send(rec, topic: str, payload: bytes, *, retain: bool = False) -> None:
    rec.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT)


def _settle(daemon: Daemon, rec) -> None:
    """Round-trip a known-good command so every earlier message has been handled."""
    calls = len(daemon.calls)
    _send(rec, DETECT_SET, b"on")
    assert wait_until(lambda: len(daemon.calls) > calls, WAIT)


def test_detect_on_off_is_passed_on_and_echoed_retained(broker, recorder, make_sink):
    daemon = Daemon()
    rec = recorder([DETECT_STATE])
    sink = make_sink(sink_config(broker), on_command=daemon)
    assert sink.wait_connected(WAIT)
    _send(rec, DETECT_SET, b" off\n")
    assert rec.wait_for(lambda: rec.payloads(DETECT_STATE) == [b"OFF"])
    assert daemon.calls == [("door", "detect", "OFF")]
    late = recorder([DETECT_STATE])
    assert late.wait_for(lambda: late.payloads(DETECT_STATE) == [b"OFF"])
    assert late.on(DETECT_STATE)[0].retain


def test_bad_payloads_are_logged_refusals(broker, recorder, make_sink, caplog):
    daemon = Daemon()
    rec = recorder([DETECT_STATE])
    sink = make_sink(sink_config(broker), on_command=daemon)
    assert sink.wait_connected(WAIT)
    with caplog.at_level(logging.WARNING, logger="rpi_agent.sinks"):
        for payload in (b"MAYBE", b"\xff\xfe", b"", b"ON OFF" * 50):
            _send(rec, DETECT_SET, payload)
        _send(rec, "faceagent/garage/detect/set", b"ON")  # not subscribed: never reaches the sink
        _send(rec, "faceagent/door/laser/set", b"ON")
        _send(rec, UNLOCK_SET, b"ON")
        _settle(daemon, rec)
    assert daemon.calls == [("door", "detect", "ON")]
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 6, refusals
    assert any("expected ON or OFF" in m for m in refusals)
    assert any("unknown feature 'laser'" in m for m in refusals)
    assert any("remote unlock is not enabled" in m for m in refusals)
    assert all("\n" not in m for m in refusals)


def test_unlock_only_where_enabled_and_with_a_valid_payload(broker, recorder, make_sink, caplog):
    daemon = Daemon()
    rec = recorder(["faceagent/door/unlock/state"])
    sink = make_sink(sink_config(broker), on_command=daemon, remote_unlock={"door"})
    assert sink.wait_connected(WAIT)
    with caplog.at_level(logging.WARNING, logger="rpi_agent.sinks"):
        for payload in (b"-3", b"nan", b"9999", b"open sesame"):
            _send(rec, UNLOCK_SET, payload)
        _send(rec, UNLOCK_SET, b"2.5")
        _send(rec, UNLOCK_SET, b"PRESS")
        assert rec.wait_for(lambda: len(rec.on("faceagent/door/unlock/state")) == 2)
    assert daemon.calls == [("door", "unlock", "2.5"), ("door", "unlock", "ON")]
    assert sum("refused unlock" in r.getMessage() for r in caplog.records) == 4


def test_retained_commands_are_refused(broker, recorder, make_sink, caplog):
    daemon = Daemon()
    rec = recorder([DETECT_STATE])
    _send(rec, DETECT_SET, b"OFF", retain=True)
    with caplog.at_level(logging.WARNING, logger="rpi_agent.sinks"):
        sink = make_sink(sink_config(broker), on_command=daemon)
        assert sink.wait_connected(WAIT)
        _settle(daemon, rec)
    assert daemon.calls == [("door", "detect", "ON")]
    assert any("refused retained command" in r.getMessage() for r in caplog.records)


def test_a_failing_handler_is_logged_and_the_sink_keeps_working(broker, recorder, make_sink, caplog):
    daemon = Daemon(fail=True)
    rec = recorder([DETECT_STATE, "faceagent/events"])
    sink = make_sink(sink_config(broker), on_command=daemon)
    assert sink.wait_connected(WAIT)
    with caplog.at_level(logging.ERROR, logger="rpi_agent.sinks"):
        _send(rec, DETECT_SET, b"ON")
        assert daemon.called.wait(WAIT)
        from broker_fixtures import event_result

        sink.publish(event_result())
        assert rec.wait_for(lambda: len(rec.on("faceagent/events")) == 1)
    assert rec.on(DETECT_STATE) == []
    assert any("command detect=ON for door failed" in r.getMessage() for r in caplog.records)
