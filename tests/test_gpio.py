"""GPIO sink on gpiozero's MockFactory: relay pulses, dwell, cooldown, LED, buzzer, fail-secure locking.

Pin histories are compared as whole lists (gpiozero's ``assert_states`` stops at the shorter list).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from rpi_agent.config.camera import GpioConfig
from rpi_agent.domain import FaceEvent, Frame, FrameResult, TrackedFace
from rpi_agent.errors import ConfigError, GpioError
from rpi_agent.sinks.gpio import LOCKED, UNLOCKED, GpioSink, make_pin_factory

RELAY, LED, BUZZER = 17, 27, 22
WAIT = 10.0  # generous upper bound for a background timer to fire; never a measured duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class States:
    """Collects ``on_state`` calls and lets a test wait for the relay to lock again."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, camera: str, feature: str, value: str) -> None:
        assert (camera, feature) == ("door", "relay")
        with self._changed:
            self.values.append(value)
            self._changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.values) >= count, timeout=WAIT), self.values


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    mock = MockFactory()
    yield mock
    mock.reset()


def history(factory: MockFactory, pin: int) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def wait_history(factory: MockFactory, pin: int, length: int) -> list[bool]:
    deadline = time.monotonic() + WAIT
    while len(history(factory, pin)) < length and time.monotonic() < deadline:
        time.sleep(0.005)
    return history(factory, pin)


def face(face_id: str = "f1", zones: tuple[str, ...] = ()) -> TrackedFace:
    return TrackedFace(face_id, "door", (10.0, 10.0, 50.0, 60.0), 0.9, 0.9, 2000.0, zones, zones)


def result(*faces: TrackedFace, new: tuple[TrackedFace, ...] = ()) -> FrameResult:
    frame = Frame("door", 0, 0.0, None, 640, 480, )
    events = tuple(FaceEvent("new", f, f) for f in new)
    return FrameResult(frame, faces, events, {})


def sink(factory: MockFactory, states: States, clock: Clock, **options: object) -> GpioSink:
    cfg = {"relay_pin": RELAY, "relay_seconds": 0.05, "dwell_seconds": 1.0, "cooldown_seconds": 10.0, **options}
    return GpioSink(GpioConfig(**cfg), camera="door", pin_factory=factory, on_state=states,  # type: ignore[arg-type]
                    clock=clock)


def test_relay_starts_locked_and_pulses_after_dwell(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock)
    assert history(factory, RELAY) == [False]
    assert states.values == [LOCKED]
    gpio.publish(result(face()))
    clock.now += 0.9
    gpio.publish(result(face()))
    assert history(factory, RELAY) == [False]  # 0.9 s < dwell
    clock.now += 0.1
    gpio.publish(result(face()))
    assert history(factory, RELAY) == [False, True]
    assert gpio.relay_state == UNLOCKED
    states.wait_for(3)
    assert states.values == [LOCKED, UNLOCKED, LOCKED]
    assert history(factory, RELAY) == [False, True, False]
    # The same face does not open the door again, even after the cooldown.
    clock.now += 60
    gpio.publish(result(face()))
    assert history(factory, RELAY) == [False, True, False]
    gpio.close()
    assert states.values == [LOCKED, UNLOCKED, LOCKED]


def test_cooldown_holds_back_the_next_face(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, dwell_seconds=0.0, cooldown_seconds=5.0)
    gpio.publish(result(face("a")))
    states.wait_for(3)  # pulse for a, locked again
    gpio.publish(result(face("a"), face("b")))
    clock.now += 4.9
    gpio.publish(result(face("a"), face("b")))
    assert history(factory, RELAY) == [False, True, False]
    clock.now += 0.2
    gpio.publish(result(face("a"), face("b")))
    assert history(factory, RELAY)[:4] == [False, True, False, True]
    states.wait_for(5)
    assert history(factory, RELAY) == [False, True, False, True, False]
    gpio.close()


def test_zones_gate_the_relay_and_leaving_resets_dwell(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, zones=("porch",))
    gpio.publish(result(face(zones=("street",))))
    clock.now += 5
    gpio.publish(result(face(zones=("street",))))
    assert history(factory, RELAY) == [False]
    gpio.publish(result(face(zones=("porch",))))
    clock.now += 0.6
    gpio.publish(result(face(zones=())))  # stepped out: dwell starts again
    clock.now += 0.6
    gpio.publish(result(face(zones=("porch", "street"))))
    clock.now += 0.6
    gpio.publish(result(face(zones=("porch",))))
    assert history(factory, RELAY) == [False]
    clock.now += 0.4
    gpio.publish(result(face(zones=("porch",))))
    assert history(factory, RELAY) == [False, True]
    gpio.close()
    assert history(factory, RELAY) == [False, True, False]


def test_active_low_relay(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, relay_active_high=False)
    assert history(factory, RELAY) == [False, True]  # LOCKED = pin high
    assert gpio.unlock(0.05)
    states.wait_for(3)
    assert history(factory, RELAY) == [False, True, False, True]
    gpio.close()
    assert history(factory, RELAY) == [False, True, False, True]


def test_led_follows_presence_and_buzzer_beeps_per_new_face(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, relay_pin=None, led_pin=LED, buzzer_pin=BUZZER, beep_seconds=0.01)
    assert states.values == []  # no relay, nothing to report
    gpio.publish(result())
    assert history(factory, LED) == [False]
    gpio.publish(result(face("a"), face("b"), new=(face("a"), face("b"))))
    gpio.publish(result(face("a"), face("b")))
    assert history(factory, LED) == [False, True]
    assert wait_history(factory, BUZZER, 5) == [False, True, False, True, False]  # two beeps
    gpio.publish(result())
    assert history(factory, LED) == [False, True, False]
    gpio.close()
    assert history(factory, LED) == [False, True, False]
    assert history(factory, BUZZER) == [False, True, False, True, False]


def test_remote_unlock_ignores_cooldown(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, dwell_seconds=0.0)
    gpio.publish(result(face("a")))
    states.wait_for(3)
    assert gpio.unlock(0.05)  # within the cooldown of the automatic pulse
    states.wait_for(5)
    assert history(factory, RELAY) == [False, True, False, True, False]
    with pytest.raises(ValueError, match="positive"):
        gpio.unlock(0)
    gpio.close()
    assert not gpio.unlock(1.0)
    assert history(factory, RELAY) == [False, True, False, True, False]


def test_close_locks_at_once_and_the_timer_cannot_unlock(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, relay_seconds=0.2)
    assert gpio.unlock(0.2)
    gpio.close()
    assert history(factory, RELAY) == [False, True, False]
    gpio.close()  # idempotent
    time.sleep(0.4)  # past the pulse's own end: its timer must have nothing left to do
    assert history(factory, RELAY) == [False, True, False]
    assert states.values == [LOCKED, UNLOCKED, LOCKED]


def test_close_racing_pulses_always_ends_locked(factory: MockFactory) -> None:
    for round_ in range(30):
        states, clock = States(), Clock()
        gpio = sink(factory, states, clock)
        hammer = threading.Thread(target=lambda g=gpio: [g.unlock(0.001) for _ in range(50)])
        hammer.start()
        if round_ % 2:
            time.sleep(0.001)
        gpio.close()
        hammer.join(timeout=WAIT)
        time.sleep(0.01)
        assert history(factory, RELAY)[-1] is False
        assert states.values[-1] == LOCKED
        assert not gpio.unlock(1.0)
        factory.reset()


def test_exception_in_publish_locks_the_relay(factory: MockFactory) -> None:
    states, clock = States(), Clock()
    gpio = sink(factory, states, clock, relay_seconds=30.0)
    assert gpio.unlock(30.0)
    broken = FrameResult(Frame("door", 0, 0.0, None, 1, 1), (None,), (), {})  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        gpio.publish(broken)
    assert history(factory, RELAY) == [False, True, False]
    assert states.values == [LOCKED, UNLOCKED, LOCKED]
    assert not gpio.unlock(1.0)


def test_context_manager_and_busy_pins(factory: MockFactory) -> None:
    with sink(factory, States(), Clock()) as gpio:
        with pytest.raises(GpioError, match="cannot claim GPIO pins"):
            sink(factory, States(), Clock())
        assert gpio.unlock(10.0)
    assert history(factory, RELAY) == [False, True, False]


def test_pin_factory_by_name() -> None:
    previous = Device.pin_factory
    try:
        Device.pin_factory = None
        mock = make_pin_factory("mock")
        assert isinstance(mock, MockFactory)
        assert make_pin_factory("mock") is mock is Device.pin_factory
        with pytest.raises(ConfigError, match="unknown GPIO pin factory 'nope'"):
            make_pin_factory("nope")
        gpio = GpioSink(GpioConfig(relay_pin=RELAY), camera="door", pin_factory="mock")
        assert [s.state for s in mock.pin(RELAY).states] == [False]
        gpio.close()
    finally:
        if isinstance(Device.pin_factory, MockFactory):
            Device.pin_factory.reset()
        Device.pin_factory = previous
