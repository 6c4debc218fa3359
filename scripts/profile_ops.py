#!/usr/bin/env python3
"""Where a TFLite model's inference time goes, op by op, under LiteRT + XNNPACK; prints JSON.

The Python LiteRT API has no per-op profiler once XNNPACK has taken the whole graph (one DELEGATE
node), so this times prefixes of the graph instead: model k runs the first k ops and outputs every
tensor they produce that nothing later in the prefix reads (so no op is dead code), and op k costs
``time(k) - time(k - 1)``. Every prefix is the same XNNPACK code as the full model. All prefixes of
all given models take turns in one process, one thread, so background load hits them alike; each
time is a median. Differences of medians are noisy at the 0.01 ms level: read the per-op-type sums.

Usage:
    .venv/bin/python scripts/profile_ops.py MODEL.tflite [MODEL.tflite ...] [--rounds 30] [--step 1]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from rpi_agent.evaluation.machine import cpu_model


def prefix_model(model: Any, k: int) -> bytes:
    """The flatbuffer of ``model`` cut after its first ``k`` operators."""
    import copy

    from ai_edge_litert.tools import flatbuffer_utils as fb

    cut = copy.deepcopy(model)
    graph = cut.subgraphs[0]
    graph.operators = graph.operators[:k]
    produced: list[int] = []
    consumed: set[int] = set()
    for op in graph.operators:
        consumed.update(int(i) for i in op.inputs if i >= 0)
        produced.extend(int(o) for o in op.outputs)
    graph.outputs = [t for t in produced if t not in consumed] or produced[-1:]
    cut.signatureDefs = []
    return bytes(fb.convert_object_to_bytearray(cut))


def op_names(model: Any) -> list[str]:
    from ai_edge_litert.tools import flatbuffer_utils as fb

    return [fb.opcode_to_name(model, op.opcodeIndex) or "?" for op in model.subgraphs[0].operators]


class Prefix:
    """One prefix model, ready to invoke on a fixed random input."""

    def __init__(self, content: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_content=content, num_threads=1)
        self.interp.allocate_tensors()
        detail = self.interp.get_input_details()[0]
        rng = np.random.default_rng(0)
        info = np.iinfo(detail["dtype"]) if np.issubdtype(detail["dtype"], np.integer) else None
        data = (rng.integers(info.min, info.max, detail["shape"], endpoint=True) if info
                else rng.uniform(-1, 1, detail["shape"]))
        self.interp.set_tensor(detail["index"], data.astype(detail["dtype"]))
        self.samples: list[float] = []

    def time(self, repeats: int) -> None:
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.interp.invoke()
            self.samples.append((time.perf_counter() - t0) * 1e3)


def profile(paths: list[Path], *, rounds: int, step: int, repeats: int) -> dict[str, Any]:
    from ai_edge_litert.tools import flatbuffer_utils as fb

    plans: dict[str, tuple[list[str], dict[int, Prefix]]] = {}  # by path: two builds may share a name
    for path in paths:
        model = fb.read_model(path)
        names = op_names(model)
        # XNNPACK fuses a PAD into the convolution after it: a prefix ending in a PAD would time a
        # stand-alone pad the full model never runs.
        cuts = sorted(k for k in {*range(step, len(names), step), len(names)} if names[k - 1] != "PAD")
        plans[str(path)] = (names, {k: Prefix(prefix_model(model, k)) for k in cuts})
    for round_index in range(rounds + 1):
        for _, prefixes in plans.values():
            for prefix in prefixes.values():
                if round_index == 0:
                    prefix.interp.invoke()  # warm-up
                else:
                    prefix.time(repeats)
    return {name: _report(names, prefixes) for name, (names, prefixes) in plans.items()}


def _report(names: list[str], prefixes: dict[int, Prefix]) -> dict[str, Any]:
    medians = {k: statistics.median(p.samples) for k, p in prefixes.items()}
    rows, by_type = [], collections.defaultdict(float)
    previous_k, previous_ms = 0, 0.0
    for k in sorted(medians):
        ms = medians[k] - previous_ms
        label = "+".join(names[previous_k:k])
        rows.append({"ops": f"{previous_k}..{k - 1}", "names": label, "ms": round(ms, 4)})
        # A multi-op step is shared out evenly; a PAD is fused into the op after it, which takes its share.
        counted = [name for name in names[previous_k:k] if name != "PAD"] or names[previous_k:k]
        for name in counted:
            by_type[name] += ms / len(counted)
        previous_k, previous_ms = k, medians[k]
    total = medians[max(medians)]
    return {
        "total_ms": round(total, 4),
        "by_op_type_ms": {k: round(v, 4) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        "by_op_type_share": {k: round(v / total, 3) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        "steps": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="TFLite files")
    parser.add_argument("--rounds", type=int, default=30, help="passes over all prefixes (default 30)")
    parser.add_argument("--repeats", type=int, default=5, help="invokes per prefix per pass (default 5)")
    parser.add_argument("--step", type=int, default=1, help="ops added per prefix (default 1: every op)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.models if not p.is_file()]
    if missing:
        print(f"profile_ops: no such model file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.rounds < 1 or args.step < 1 or args.repeats < 1:
        print("profile_ops: --rounds, --repeats and --step must be at least 1", file=sys.stderr)
        return 2
    result = {"cpu": cpu_model(), "machine": platform.machine(), "threads": 1,
              "models": profile(args.models, rounds=args.rounds, step=args.step, repeats=args.repeats)}
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
