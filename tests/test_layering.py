"""The README's import rules and size limits, checked on the source so they stay true.

Imports are read from the syntax tree (``if TYPE_CHECKING:`` blocks excluded: they never run);
the lazy-import rule is also checked by importing the package with the hardware libraries blocked.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rpi_agent.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "rpi_agent"

VOCABULARY = {"rpi_agent.domain", "rpi_agent.errors", "rpi_agent.geometry", "rpi_agent.paths"}
STAGES = ("rpi_agent.detection", "rpi_agent.tracking")
# Library → the only modules (prefixes) allowed to import it.
ADAPTER_LIBRARIES = {
    "picamera2": ("rpi_agent.sources.picamera",),
    "libcamera": ("rpi_agent.sources.picamera",),
    "serial": ("rpi_agent.sources.k210",),
    "gpiozero": ("rpi_agent.sinks.gpio",),
    "paho": ("rpi_agent.sinks",),
    "ai_edge_litert": ("rpi_agent.detection.tflite",),
    "tflite_runtime": ("rpi_agent.detection.tflite",),
}
MAX_CLASS_LINES, MAX_FUNCTION_LINES, MAX_MODULE_LINES = 250, 50, 400
ADAPTERS = ("rpi_agent.sources.picamera", "rpi_agent.sources.opencv", "rpi_agent.sources.images",
            "rpi_agent.sources.k210", "rpi_agent.sinks.mqtt", "rpi_agent.sinks.gpio",
            "rpi_agent.detection.face_detector", "rpi_agent.detection.tflite")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, *, top_level_only: bool = False) -> set[str]:
    """Absolute module names imported where the code runs (not under ``if TYPE_CHECKING``)."""
    found: set[str] = set()

    def visit(node: ast.AST, depth: int) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, depth)
            return
        if isinstance(node, ast.Import) and not (top_level_only and depth):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and not (top_level_only and depth):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        inner = depth + isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, 0)
    return found


MODULES = {_module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.rglob("*.py"))}


def _within(name: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _internal(name: str, tree: ast.AST) -> set[str]:
    return {m for m in _imports(tree) if m.startswith("rpi_agent.") and m in MODULES}


def test_the_shared_vocabulary_imports_only_itself() -> None:
    for name in VOCABULARY:
        assert _internal(name, MODULES[name]) <= VOCABULARY, name


@pytest.mark.parametrize("stage", STAGES)
def test_stages_import_only_the_vocabulary_and_their_own_package(stage: str) -> None:
    for name, tree in MODULES.items():
        if _within(name, (stage,)):
            foreign = {m for m in _internal(name, tree) if m not in VOCABULARY and not _within(m, (stage,))}
            assert not foreign, f"{name} imports {sorted(foreign)}"


def test_hardware_and_runtime_libraries_only_in_their_adapters() -> None:
    for name, tree in MODULES.items():
        for module in _imports(tree):
            allowed = ADAPTER_LIBRARIES.get(module.split(".")[0])
            if allowed is not None:
                assert _within(name, allowed), f"{name} imports {module}"


def test_adapters_import_their_libraries_lazily() -> None:
    heavy = set(ADAPTER_LIBRARIES) - {"paho"}  # the MQTT sink is itself imported lazily by the daemon
    for name, tree in MODULES.items():
        eager = {m for m in _imports(tree, top_level_only=True) if m.split(".")[0] in heavy}
        assert not eager, f"{name} imports {sorted(eager)} at import time"


def test_only_the_daemon_wires_concrete_adapters() -> None:
    # The source factory builds sources, the face detector loads its runtime: the rest of the
    # pipeline, and the rest of the daemon's runtime, see protocols only.
    wiring = {"rpi_agent.runtime.daemon", "rpi_agent.sources", "rpi_agent.detection.face_detector"}
    for name, tree in MODULES.items():
        if not _within(name, ("rpi_agent.runtime", "rpi_agent.sources", "rpi_agent.sinks", *STAGES)):
            continue
        if name in wiring or name in ADAPTERS:
            continue
        used = {m for m in _internal(name, tree) if m in ADAPTERS}
        assert not used, f"{name} imports adapters {sorted(used)}"


def test_the_package_imports_without_the_hardware_libraries() -> None:
    blocked = [*sorted(ADAPTER_LIBRARIES), "cv2"]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import rpi_agent.cli, rpi_agent.runtime.daemon, rpi_agent.sources, rpi_agent.detection.face_detector\n"
        "import rpi_agent.cli.run, rpi_agent.cli.detect, rpi_agent.config\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
def test_no_class_function_or_module_over_its_size_limit() -> None:
    too_long = []
    for name, tree in MODULES.items():
        lines = (PACKAGE.parent / (name.replace(".", "/"))).with_suffix(".py")
        path = lines if lines.exists() else lines.with_suffix("") / "__init__.py"
        if len(path.read_text().splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"module {name}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    too_long.append(f"{name}.{node.name}: {length} lines (limit {limit})")
    assert not too_long, too_long
