"""Property-based tests: generated configs, image files and command lines get one line and a documented
exit status (or a clean refusal), never a traceback.

- configs: the full default tree of the shipped config.toml, mutated at a random key (wrong types,
  nan/inf, huge numbers and strings, NUL, unknown keys, bad choices), written as TOML and checked with
  ``check-config``; whatever it refuses, ``run`` refuses with the same line.
- image files: real encodings of small pictures, truncated, bit-flipped, with another format's magic,
  with a header claiming a huge size, or empty; the loader returns RGB or raises ``ImageError``.
- command lines: the options of ``detect``, ``check-config`` and ``run`` with generated values.

Everything runs in this process through the ``faceagent`` entry point (``rpi_agent.cli.main``), with
stdout and stderr captured; examples are bounded (150 per test, ``FACEAGENT_PROPERTY_EXAMPLES=N`` for a
longer hunt) so the module takes about ten seconds. ``--hypothesis-show-statistics`` shows what the
examples reached.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from image_support import png_claiming
from PIL import Image

from rpi_agent.cli import EX_CONFIG, main
from rpi_agent.config import parse_config
from rpi_agent.config.schema import to_dict
from rpi_agent.errors import ImageError
from rpi_agent.imaging.files import MAX_PIXELS, read_image
from rpi_agent.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "config.toml"
# A generous deadline: it catches a hang, not a slow machine (these run beside other jobs).
BOUNDED = settings(max_examples=int(os.environ.get("FACEAGENT_PROPERTY_EXAMPLES", "150")), deadline=30_000,
                   database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
EXIT_CODES = {0, 1, 2, EX_CONFIG}


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``faceagent ARGV`` in process: exit status, stdout, stderr; argparse's exits included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_one_line(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code in EXIT_CODES, (code, err)
    if code != 0:
        lines = [ln for ln in err.splitlines() if ln.startswith("faceagent")]
        assert len(lines) == 1, err[-2000:]
        assert len(lines[0]) <= 500, lines[0][:600]


# -- TOML -----------------------------------------------------------------------------------------

def toml_value(value: Any) -> str:
    """A value as inline TOML (tables inline too, so a whole document is ``key = value`` lines)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml_document(tree: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}\n" for k, v in tree.items())


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def default_tree() -> dict[str, Any]:
    """Every key of the shipped config, defaults filled in; a camera with a zone and pins, MQTT off."""
    raw = tomllib.loads(SHIPPED.read_text())
    raw.setdefault("mqtt", {})["enabled"] = False
    camera = raw["cameras"][0]
    camera["source"] = "/dev/video0"
    camera["zones"] = {"door": {"points": [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]}}
    camera["gpio"] = {"relay_pin": 17, "led_pin": 27, "zones": ["door"]}
    return _without_none(to_dict(parse_config(raw), redact=False))


def leaf_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(node, dict):
        return [prefix] + [p for k, v in node.items() for p in leaf_paths(v, (*prefix, k))]
    if isinstance(node, list):
        return [prefix] + [p for i, v in enumerate(node) for p in leaf_paths(v, (*prefix, i))]
    return [prefix]


DEFAULTS = default_tree()
PATHS = [p for p in leaf_paths(DEFAULTS) if p]

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.integers(min_value=10 ** 300, max_value=10 ** 301),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e-300, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", " ", "\x00", "a\x00b", "RFB-320:fp16", "picamera:x", "k210:", "/dev/video0", "../..",
                     "/", "~", "rtsp://", "nan", "LOCKED"]),
    st.integers(min_value=200, max_value=70_000).map(lambda n: "x" * n),
    st.integers(min_value=300, max_value=1000).map(lambda n: "/tmp/" + "a" * n),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3)),
    max_leaves=8)


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    tree = json.loads(json.dumps(DEFAULTS))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = tree
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=12))] = draw(values)  # an unknown (or known) key
            else:
                parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced the way there
    return tree


@BOUNDED
@given(tree=mutated_configs())
def test_generated_configs_are_one_line_and_exit_78(tree):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(toml_document(tree), encoding="utf-8")
        code, out, err = run_cli(["check-config", str(path)])
        event(f"check-config {code}: {err.partition(': config error: ')[2].partition(':')[0][:40]}")
        assert code in (0, EX_CONFIG), (code, err)
        assert_one_line(code, err)
        if code == 0:
            assert out.strip().endswith(")"), out
            return
        line = next(ln for ln in err.splitlines() if ln.startswith("faceagent"))
        assert line.startswith("faceagent: config error: ")
        run_code, _, run_err = run_cli(["run", "--config", str(path), "--gpio-factory", "mock"])
        assert run_code == EX_CONFIG and line in run_err, (line, run_err[-1000:])


# -- image files ----------------------------------------------------------------------------------

FORMATS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif", "PPM": ".ppm",
           "GIF": ".gif"}
MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"P6\n",
          b"GIF89a", b""]


@st.composite
def image_files(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    mode = draw(st.sampled_from(["RGB", "L"] if fmt in ("JPEG", "PPM") else ["RGB", "L", "RGBA", "P", "1"]))
    width, height = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2 ** 16))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode if fmt != "PPM" or mode != "L" else "L").save(buffer, fmt)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "truncate", "flip", "magic", "huge", "empty"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif damage == "flip":
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
    elif damage == "magic":
        magic = draw(st.sampled_from(MAGICS))
        data = magic + data[len(magic):]
    elif damage == "huge":
        side = draw(st.integers(10_000, 2 ** 31 - 1))
        data = png_claiming(side, draw(st.integers(10_000, 2 ** 31 - 1)), draw(st.sampled_from(["RGB", "L"])),
                            draw(st.binary(max_size=64)))
    elif damage == "empty":
        data = b""
    return FORMATS[fmt], data


@BOUNDED
@given(case=image_files())
def test_generated_image_files_load_or_are_refused_in_one_line(case):
    suffix, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"image{suffix}"
        path.write_bytes(data)
        try:
            image = read_image(path)
        except ImageError as exc:
            message = str(exc)
            event(f"refused: {re.sub(r'[0-9]+', 'N', message.partition(': ')[2])[:30]}")
            assert message.startswith(f"{path}: ") and "\n" not in message, message
            return
        event("loaded")
        rgb = image.rgb
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous
        assert 1 <= rgb.shape[0] * rgb.shape[1] <= MAX_PIXELS


# -- command lines --------------------------------------------------------------------------------

arg_text = st.one_of(
    st.text(max_size=12).filter(lambda s: "\x00" not in s),
    st.sampled_from(["-1", "0", "1", "1.5", "nan", "inf", "1e999", "0.5", "RFB-320:fp16", "RFB-320:fp32",
                     ":", "a:b:c", "mqtt://", "mqtt://h:99999", "mqtts://u:p@h", "http://x", "-", "--", "~",
                     "/", "/dev/null", "/nonexistent.tflite", "picamera:7", "k210:/dev/ttyUSB9?baud=1"]),
    st.integers(min_value=200, max_value=5000).map(lambda n: "x" * n),
)
# Paths for `detect` stay inside the scratch directory it runs in: a folder argument is searched
# recursively, and "/" or ".." would send it through the whole machine.
path_text = st.one_of(arg_text.filter(lambda s: not s.startswith(("/", "~")) and ".." not in s),
                      st.sampled_from(["/dev/null", "/nonexistent.tflite", "/etc/hostname"]))
DETECT_OPTIONS = ["--model", "--threshold", "--resize", "--threads", "--annotate"]
RUN_OPTIONS = ["--source", "--mqtt-url", "--max-frames", "--gpio-factory"]


@st.composite
def command_lines(draw: st.DrawFn, refusing_config: Path) -> list[str]:
    command = draw(st.sampled_from(["detect", "check-config", "run"]))
    if command == "check-config":
        return [command, draw(arg_text)]
    if command == "detect":
        argv = [command, *draw(st.lists(path_text, min_size=1, max_size=2))]
        options = DETECT_OPTIONS
    else:
        argv = [command, "--config", str(refusing_config)]
        options = RUN_OPTIONS
    for option in draw(st.lists(st.sampled_from(options), max_size=3)):
        argv += [option, draw(arg_text)]
    return argv


_TMP = Path(tempfile.mkdtemp(prefix="faceagent-props-"))
# `run` under test must never start: this config has no model, so every run ends at the config check.
REFUSING = _TMP / "refusing.toml"
REFUSING.write_text(f'[detector]\nmodel = "{_TMP}/absent.tflite"\n[mqtt]\nenabled = false\n'
                    f'[paths]\nstate_dir = "{_TMP}/state"\n[[cameras]]\nname = "door"\nsource = "/dev/video0"\n')


@BOUNDED
@given(argv=command_lines(REFUSING))
def test_generated_command_lines_are_one_line_and_a_documented_status(argv):
    scratch = _TMP / "cwd"
    scratch.mkdir(exist_ok=True)
    with contextlib.chdir(scratch):
        code, _, err = run_cli(argv)
    event(f"{argv[0]} {code}")
    assert_one_line(code, err)
    if argv[0] == "run":
        assert code in (2, EX_CONFIG), (code, err)
