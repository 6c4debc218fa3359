"""Precision/recall plot of a WIDER FACE evaluation."""

from __future__ import annotations

from pathlib import Path

from rpi_agent.evaluation.widerface import SETTINGS, WiderResult


def plot_pr(result: WiderResult, path: str | Path, *, title: str) -> Path:
    """Save the Easy/Medium/Hard PR curves in one PNG.

    Args:
        result: An evaluation result.
        path: Output ``.png`` file; its folder is created.
        title: Plot title, e.g. the model name.

    Returns:
        The written path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for setting in SETTINGS:
        ax.plot(result.recall[setting], result.precision[setting], linewidth=2.0,
                label=f"{setting} AP {result.ap[setting]:.3f}")
    ax.set(xlim=(0.0, 1.0), ylim=(0.0, 1.01), xlabel="recall", ylabel="precision",
           title=f"{title} — WIDER FACE val ({result.images} images)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
