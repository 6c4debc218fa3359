"""Model variants: manifest, weights fetching, TFLite builds, and listing.

Importing this package is cheap and needs only the standard library. The conversion code
(``networks``, ``convert``, ``_build_worker``) imports torch/tensorflow and runs only inside
the build venv, started by :func:`rpi_agent.models.build.build_models`.
"""

from rpi_agent.models.listing import list_models, model_path
from rpi_agent.models.manifest import Manifest, PriorConfig, Variant, load_manifest, parse_size

__all__ = ["Manifest", "PriorConfig", "Variant", "list_models", "load_manifest", "model_path", "parse_size"]
