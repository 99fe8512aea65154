"""ROC and PR curves of an evaluation, pixel- and case-level side by side (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .._fileio import atomic_path
from ..metrics import ScoreCounts

__all__ = ["write_curves"]


def write_curves(
    path: Path,
    kind: Literal["roc", "pr"],
    pixel_counts: dict[str, ScoreCounts],
    sample_counts: dict[str, ScoreCounts],
    *,
    overwrite: bool = False,
) -> None:
    """ROC or PR curves, pixel-level and sample-level side by side."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, no GUI

    figure = Figure(figsize=(10, 4.5), layout="constrained")
    for ax, (level, counts) in zip(
        figure.subplots(1, 2),
        (("voxels pooled", pixel_counts), ("cases", sample_counts)),
        strict=True,
    ):
        for scorer, c in counts.items():
            if kind == "roc":
                fpr, tpr, _ = c.roc_curve()
                ax.plot(fpr, tpr, label=f"{scorer} (AUROC {c.roc_auc():.3f})")
            else:
                precision, recall, _ = c.pr_curve()
                ax.step(recall, precision, where="post",
                        label=f"{scorer} (AP {c.average_precision():.3f})")  # fmt: skip
        if kind == "roc":
            ax.plot([0, 1], [0, 1], color="0.7", lw=0.8, ls="--")
            ax.set(xlabel="false positive rate", ylabel="true positive rate")
        else:
            ax.set(xlabel="recall", ylabel="precision")
        ax.set(title=f"{kind.upper()}, {level}", xlim=(0, 1), ylim=(0, 1.02))
        if counts:
            ax.legend(loc="lower right" if kind == "roc" else "upper right", fontsize=8)
    with atomic_path(path, overwrite=overwrite) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
