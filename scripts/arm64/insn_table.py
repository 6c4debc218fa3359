"""Turn insn_count.sh's JSON lines into a Markdown table: instructions per frame, ratio to a reference, bound.

Usage:
    python3 scripts/arm64/insn_table.py COUNTS.jsonl [...] [--reference RFB-320]

Per model and emulated core: the ``invoke`` and ``detect`` counts in millions (the median of the repeats),
both divided by the reference model's on the same core, and the lower bound on a Pi's time
per frame that the ``detect`` count implies: instructions / (the core's peak instructions per cycle x the
board's clock). That bound is not a timing: real code runs at a fraction of the peak and waits for memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Core:
    """What a count on one emulated core says about the board that has it."""

    board: str
    peak_ipc: int  # instructions decoded per cycle at most
    ghz: float


CORES = {
    "cortex-a53": Core("Pi 3 B+", 2, 1.4),
    "cortex-a72": Core("Pi 4 B", 3, 1.5),
    "cortex-a76": Core("Pi 5", 4, 2.4),
}


def _name(model: str) -> str:
    """A model file's variant name (``X-int8.tflite`` is the INT8 build of variant ``X``)."""
    return model.removesuffix(".tflite").removesuffix("-int8")


Key = tuple[str, str, str]  # model, cpu, stage


def load(paths: list[Path]) -> tuple[dict[Key, float], dict[str, str]]:
    """The median count in millions per ``(model, cpu, stage)``, and each model's input size."""
    counts: dict[Key, list[int]] = {}
    inputs: dict[str, str] = {}
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.startswith("{"):
                continue
            try:
                row = json.loads(line)
                key = (_name(str(row["model"])), str(row["cpu"]), str(row["stage"]))
                counts.setdefault(key, []).append(int(row["insns_per_frame"]))
            except (ValueError, KeyError) as exc:
                raise SystemExit(f"insn_table: {path}:{number}: not a line of insn_count.sh ({exc})") from None
            inputs.setdefault(key[0], str(row.get("input", "?")))
    return {key: statistics.median(values) / 1e6 for key, values in counts.items()}, inputs


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _ratio(millions: dict[Key, float], key: Key, reference: str) -> str:
    value, ref = millions.get(key), millions.get((reference, *key[1:]))
    return "n/a" if value is None or ref is None else f"{value / ref:.2f}"


def table(millions: dict[Key, float], inputs: dict[str, str], reference: str) -> str:
    """One row per model, four columns per emulated core (invoke, detect, ratio, bound)."""
    cpus = [cpu for cpu in CORES if any(key[1] == cpu for key in millions)]
    head = ["model", "input"]
    for cpu in cpus:
        core = CORES[cpu]
        head += [f"{cpu} invoke", f"{cpu} detect", f"÷ {reference}'s (invoke / detect)",
                 f"{core.board} ≥ ms ({core.peak_ipc}/cycle, {core.ghz} GHz)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, size in inputs.items():
        cells = [model, size]
        for cpu in cpus:
            core = CORES[cpu]
            invoke = millions.get((model, cpu, "invoke"))
            detect = millions.get((model, cpu, "detect"))
            cells += [_cell(invoke), _cell(detect),
                      " / ".join(_ratio(millions, (model, cpu, stage), reference) for stage in ("invoke", "detect")),
                      _cell(None if detect is None else detect / (core.peak_ipc * core.ghz))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="+", type=Path, help="files of insn_count.sh's output lines")
    parser.add_argument("--reference", default="RFB-320", help="the model the ratios divide by (default: RFB-320)")
    args = parser.parse_args(argv)
    for path in args.counts:
        if not path.is_file():
            parser.error(f"no such file: {path}")
    millions, inputs = load(args.counts)
    if not millions:
        print("insn_table: no counts in " + ", ".join(map(str, args.counts)), file=sys.stderr)
        return 1
    print(table(millions, inputs, args.reference))
    return 0


if __name__ == "__main__":
    sys.exit(main())
