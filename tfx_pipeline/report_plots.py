"""The report's PNG plots: quality against size for every model, and the training curves."""

from typing import Dict, List, Optional

from models.foundation import storage

QUALITY_PLOT = "quality_vs_params.png"
CURVES_PLOT = "training_curves.png"


def write_plots(directory: str, models: Dict[str, Optional[Dict]], curves: Optional[Dict]) -> List[str]:
    """Writes the plots that the data allows; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    written = []
    present = {name: m for name, m in models.items() if m and m.get("params") and m.get("ndcg@10") is not None}
    if present:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, m in present.items():
            ax.scatter(m["params"], m["ndcg@10"])
            ax.annotate(name, (m["params"], m["ndcg@10"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("parameters (log scale)")
        ax.set_ylabel("test ndcg@10")
        ax.set_title("Quality against size")
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, storage.join(directory, QUALITY_PLOT)))
    if curves:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for name, curve in curves.items():
            if curve.get("loss"):
                left.plot(range(1, len(curve["loss"]) + 1), curve["loss"], label=f"{name} train")
            if curve.get("val_loss"):
                left.plot(range(1, len(curve["val_loss"]) + 1), curve["val_loss"], "--", label=f"{name} val")
            if curve.get("val_ndcg@10"):
                right.plot(range(1, len(curve["val_ndcg@10"]) + 1), curve["val_ndcg@10"], label=name)
        left.set_xlabel("epoch")
        left.set_ylabel("loss")
        left.set_title("Training objective (each model its own)")
        right.set_xlabel("epoch")
        right.set_ylabel("validation ndcg@10")
        right.set_title("Students: validation ranking")
        for ax in (left, right):
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
        written.append(_save(fig, storage.join(directory, CURVES_PLOT)))
    return written


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with storage.open_file(path, "wb") as handle:  # a local path or a URI; the format is no longer in a name
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return path
