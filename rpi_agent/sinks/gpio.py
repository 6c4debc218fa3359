"""GPIO actions for one camera: door relay, presence LED, buzzer. The only module importing gpiozero.

Fail-secure: the relay is LOCKED (its output inactive) when the sink starts, after every pulse, on
:meth:`GpioSink.close`, when :meth:`GpioSink.publish` raises, and at interpreter exit. Once closed it
never unlocks again, so a pulse timer racing ``close()`` cannot leave the door open. Wire the strike
so that an inactive or released (floating) pin means LOCKED.

Relay rule: a face that has stayed ``dwell_seconds`` in one of ``zones`` (anywhere when no zones are
set) pulses the relay for ``relay_seconds``, once per face, and no automatic pulse starts within
``cooldown_seconds`` after the previous one ended. Detection is not identification: any face, or a
photo of one, opens the door.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rpi_agent.config.camera import GpioConfig
from rpi_agent.domain import FrameResult
from rpi_agent.errors import ConfigError, GpioError

log = logging.getLogger(__name__)

StateCallback = Callable[[str, str, str], None]
LOCKED = "LOCKED"
UNLOCKED = "UNLOCKED"
RELAY = "relay"


def make_pin_factory(name: str | Any | None) -> Any:
    """A gpiozero pin factory from a name (``mock``, ``lgpio``, ``rpigpio``, ...), or the object given.

    ``mock`` reuses ``Device.pin_factory`` when it already is a ``MockFactory`` (and installs one when
    there is none), so tests and several sinks in one process see the same mock pins.

    Raises:
        ConfigError: Unknown factory name.
    """
    if name is None or not isinstance(name, str):
        return name
    from gpiozero import Device

    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        if not isinstance(Device.pin_factory, MockFactory):
            Device.pin_factory = MockFactory()
        return Device.pin_factory
    from importlib.metadata import entry_points

    for ep in entry_points(group="gpiozero_pin_factories"):
        if ep.name == name.lower():
            return ep.load()()
    raise ConfigError(f"unknown GPIO pin factory {name!r} (mock, lgpio, rpigpio, pigpio, native)")


class GpioSink:
    """Drives one camera's relay, LED and buzzer from pipeline results.

    Args:
        config: Pins and timings.
        camera: Camera name, passed to ``on_state``.
        pin_factory: A gpiozero factory or its name (``"mock"`` off a Pi); ``None``: gpiozero's default.
        on_state: ``on_state(camera, "relay", "LOCKED" | "UNLOCKED")`` on every relay change, called
            with the sink's lock held: it must not call back into the sink.
        clock: Monotonic seconds for dwell and cooldown (pulse lengths use real timers).

    Raises:
        GpioError: The pins cannot be claimed.

    Example:
        >>> sink = GpioSink(GpioConfig(relay_pin=17), camera="door", pin_factory="mock")  # doctest: +SKIP
        >>> sink.unlock(3.0)  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        config: GpioConfig,
        *,
        camera: str,
        pin_factory: str | Any | None = None,
        on_state: StateCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.camera = camera
        self._on_state = on_state
        self._clock = clock
        self._lock = threading.RLock()
        self._closed = False
        self._timer: threading.Timer | None = None
        self._unlocked = False
        self._cooldown_until = float("-inf")
        self._dwell_since: dict[str, float] = {}
        self._triggered: set[str] = set()
        self._led_on = False
        self.pin_factory = make_pin_factory(pin_factory)
        self._relay: Any = None
        self._led: Any = None
        self._buzzer: Any = None
        try:
            self._open_devices()
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)
        if self._relay is not None:
            self._report(LOCKED)

    def _open_devices(self) -> None:
        cfg = self.config
        try:
            from gpiozero import LED, Buzzer, GPIOZeroError, OutputDevice
        except ImportError as exc:
            raise GpioError(f"camera {self.camera}: gpiozero is not installed ({exc})") from None
        factory = self.pin_factory
        try:
            if cfg.relay_pin is not None:
                self._relay = OutputDevice(cfg.relay_pin, active_high=cfg.relay_active_high, initial_value=False,
                                           pin_factory=factory)
            if cfg.led_pin is not None:
                self._led = LED(cfg.led_pin, active_high=cfg.led_active_high, initial_value=False,
                                pin_factory=factory)
            if cfg.buzzer_pin is not None:
                self._buzzer = Buzzer(cfg.buzzer_pin, active_high=cfg.buzzer_active_high, initial_value=False,
                                      pin_factory=factory)
        except (GPIOZeroError, OSError, RuntimeError) as exc:
            raise GpioError(f"camera {self.camera}: cannot claim GPIO pins ({exc})") from None

    @property
    def relay_state(self) -> str:
        """``LOCKED`` or ``UNLOCKED``."""
        return UNLOCKED if self._unlocked else LOCKED

    def publish(self, result: FrameResult) -> None:
        """Update LED, buzzer and relay from one frame; on any exception the relay is locked first."""
        try:
            with self._lock:
                if self._closed:
                    return
                self._set_led(bool(result.faces))
                beeps = sum(1 for e in result.events if e.type == "new")
                if beeps and self._buzzer is not None:
                    on = self.config.beep_seconds
                    self._buzzer.blink(on_time=on, off_time=on, n=beeps, background=True)
                if self._relay is not None:
                    self._check_dwell(result)
        except BaseException:
            log.error("camera %s: GPIO action failed; locking the relay", self.camera)
            self.close()
            raise

    def _set_led(self, on: bool) -> None:
        if self._led is None or on == self._led_on:
            return
        if on:
            self._led.on()
        else:
            self._led.off()
        self._led_on = on

    def _check_dwell(self, result: FrameResult) -> None:
        cfg = self.config
        now = self._clock()
        present = {f.id for f in result.faces if not cfg.zones or set(f.current_zones) & set(cfg.zones)}
        # Leaving the zones (or ending) resets a face's dwell; a face opens the door once per visit.
        self._dwell_since = {i: self._dwell_since.get(i, now) for i in present}
        self._triggered &= {f.id for f in result.faces}
        if self._unlocked or now < self._cooldown_until:
            return
        for face_id, since in self._dwell_since.items():
            if face_id not in self._triggered and now - since >= cfg.dwell_seconds:
                self._triggered.add(face_id)
                log.info("camera %s: face %s present %.1f s: unlocking for %.1f s", self.camera, face_id,
                         now - since, cfg.relay_seconds)
                self._pulse(cfg.relay_seconds)
                return

    def unlock(self, seconds: float) -> bool:
        """Unlock for ``seconds`` now (the MQTT command), regardless of cooldown.

        Returns:
            False when there is no relay or the sink is closed.
        """
        if seconds <= 0:
            raise ValueError(f"unlock seconds must be positive, got {seconds}")
        with self._lock:
            if self._closed or self._relay is None:
                return False
            try:
                self._pulse(seconds)
            except BaseException:
                self.close()
                raise
            return True

    def _pulse(self, seconds: float) -> None:
        """Energise the relay and (re)start the timer that locks it; caller holds the lock."""
        if self._timer is not None:
            self._timer.cancel()
        self._relay.on()
        if not self._unlocked:
            self._unlocked = True
            self._report(UNLOCKED)
        timer = threading.Timer(seconds, self._end_pulse)
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _end_pulse(self) -> None:
        with self._lock:
            if self._closed or self._timer is not threading.current_thread():
                return  # close() locked it already, or a newer pulse owns the relay
            self._timer = None
            self._lock_relay()
            self._cooldown_until = self._clock() + self.config.cooldown_seconds

    def _lock_relay(self) -> None:
        # The pin goes inactive before anything that could fail (the report) runs.
        self._relay.off()
        if self._unlocked:
            self._unlocked = False
            self._report(LOCKED)

    def _report(self, value: str) -> None:
        if self._on_state is None:
            return
        try:
            self._on_state(self.camera, RELAY, value)
        except Exception:
            log.exception("camera %s: relay state callback failed", self.camera)

    def close(self) -> None:
        """Lock the relay, switch LED and buzzer off, release the pins; idempotent, any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timer, self._timer = self._timer, None
            if timer is not None:
                timer.cancel()
            try:
                if self._relay is not None:
                    self._lock_relay()
            finally:
                self._release()
        atexit.unregister(self.close)

    def _release(self) -> None:
        """Switch every device off and close it, going on past failures; re-raise the first."""
        first: BaseException | None = None
        for name in ("_relay", "_buzzer", "_led"):
            device = getattr(self, name)
            setattr(self, name, None)
            if device is None:
                continue
            try:
                device.off()
                device.close()
            except Exception as exc:
                log.error("camera %s: closing %s failed: %s", self.camera, name.strip("_"), exc)
                first = first or exc
        if first is not None:
            raise first

    def __enter__(self) -> GpioSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
