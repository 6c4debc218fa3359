"""Print, as one JSON object, what faceagent's runtime stands on in this Python: the platform, the versions of
the binary wheels pip chose, and which TFLite runtime and delegate load a model.

Usage: python3 probe.py [MODEL.tflite]

The XNNPACK delegate announces itself on stderr ("Created TensorFlow Lite XNNPACK delegate for CPU"); a
graph it took over shows a DELEGATE node among the interpreter's ops, which is reported here as
``delegate_nodes``.
"""

from __future__ import annotations

import json
import platform
import sys
from importlib import metadata


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _model_facts(model: str) -> dict[str, object]:
    from rpi_agent.detection.tflite import TFLiteDetector

    detector = TFLiteDetector(model, num_threads=1)
    return {
        "runtime": detector.runtime,
        "input": [detector.width, detector.height],
        "quantized": detector.is_quantized,
        "delegate_nodes": detector.delegate_nodes,
    }


def main() -> int:
    facts: dict[str, object] = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libc": " ".join(platform.libc_ver()),
        "wheels": {
            dist: _version(dist)
            for dist in (
                "faceagent",
                "numpy",
                "ai-edge-litert",
                "tflite-runtime",
                "opencv-python-headless",
                "pillow",
                "paho-mqtt",
                "gpiozero",
                "colorzero",
                "pyserial",
                "tqdm",
            )
        },
    }
    if len(sys.argv) > 1:
        facts.update(_model_facts(sys.argv[1]))
    print(json.dumps(facts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
