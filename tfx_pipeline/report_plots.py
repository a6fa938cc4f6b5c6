"""The report's plots (PNG): quality against bytes for every model, and each model's training
curves on axes of its own. No text on them may overlap (`overlapping_text`, checked on the rendered
figure before it is saved): labels are in legends and titles, not annotations beside points."""

import io
from typing import Dict, List, Optional, Tuple

from tfx_pipeline import report_names

QUALITY_PLOT = "quality_vs_bytes.png"
CURVES_PLOT = "training_curves.png"
_MARKERS = "osD^v<>Ph*X"
_COLUMNS = 3  # panels per row of the training curves


def render_plots(models: Dict[str, Optional[Dict]], curves: Optional[Dict]) -> Tuple[Dict[str, bytes], List[str]]:
    """({file name: PNG bytes} for the plots the data allows, [why a plot was not drawn]): one plot
    that fails leaves the other."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    plots, problems = {}, []
    for name, draw in ((QUALITY_PLOT, lambda: quality_figure(models)), (CURVES_PLOT, lambda: training_figure(curves or {}))):
        try:
            figure = draw()
            if figure is not None:
                plots[name] = _png(figure)
        except (ValueError, RuntimeError, TypeError, KeyError) as error:
            problems.append(f"{name}: {error}")
    return plots, problems


def quality_figure(models: Dict[str, Optional[Dict]]):
    """Test ndcg@10 against the deployed bytes (MB, log scale): one marker per learned model, the
    baselines as horizontal lines (their bar, whatever their size); names in the legend, outside the axes."""
    import matplotlib.pyplot as plt

    sized = {k: m for k, m in models.items()
             if k not in report_names.BASELINES and m and m.get("bytes") and m.get("ndcg@10") is not None}
    if not sized:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for marker, (key, m) in zip(_MARKERS * 2, sized.items()):
        ax.scatter(m["bytes"] / 1e6, m["ndcg@10"], marker=marker, s=60, label=report_names.label(key), zorder=3)
    for style, key in zip(("--", ":", "-."), report_names.BASELINES):
        if models.get(key) and models[key].get("ndcg@10") is not None:
            ax.axhline(models[key]["ndcg@10"], linestyle=style, color="grey", label=report_names.label(key))
    ax.set_xscale("log")
    _readable_log_ticks(ax.xaxis, [m["bytes"] / 1e6 for m in sized.values()])
    ax.set_xlabel("bytes of the model file, MB (log scale)")
    ax.set_ylabel("test ndcg@10")
    ax.set_title("Quality against size")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return fig


def _readable_log_ticks(axis, values) -> None:
    """Plain numbers (0.2, 1, 50) at 1-2-5 steps over a short range, powers of ten over a long one,
    no minor labels: matplotlib's own minor labels (3x10^-1 beside 4x10^-1) overlap."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(max(values) / min(values)) if min(values) > 0 else 0
    axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if decades < 3 else (1,)))
    axis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    axis.set_minor_formatter(NullFormatter())


def training_figure(curves: Dict[str, Dict]):
    """One panel per model with its own training loss (and validation loss) on its own y axis,
    then one panel of every model's validation ndcg@10 per epoch."""
    import matplotlib.pyplot as plt

    losses = {k: c for k, c in curves.items() if c.get("loss") or c.get("val_loss")}
    ranked = {k: c["val_ndcg@10"] for k, c in curves.items() if c.get("val_ndcg@10")}
    panels = len(losses) + (1 if ranked else 0)
    if not panels:
        return None
    rows = -(-panels // _COLUMNS)
    fig, axes = plt.subplots(rows, _COLUMNS, figsize=(13, 3.4 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (key, curve) in zip(flat, losses.items()):
        for series, style, what in (("loss", "-", "training"), ("val_loss", "--", "validation")):
            if curve.get(series):
                ax.plot(range(1, len(curve[series]) + 1), curve[series], style, label=what)
        ax.set_title(f"{report_names.name(key)}: loss", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=8)
    if ranked:
        ax = flat[len(losses)]
        for key, values in ranked.items():
            ax.plot(range(1, len(values) + 1), values, label=report_names.name(key))
        ax.set_title("validation ndcg@10", fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("ndcg@10")
        ax.legend(fontsize=8)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for ax in flat[:panels]:
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)  # epochs: no 1.5
    return fig


def overlapping_text(fig) -> List[Tuple[str, str]]:
    """The pairs of texts on the rendered figure whose boxes overlap, and texts cut off by the
    figure's edge (paired with "<figure edge>"): what a reader could not read."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [(text.get_text(), text.get_window_extent(renderer)) for text in _drawn_texts(fig)]
    edge = fig.bbox
    found = [(label, "<figure edge>") for label, box in boxes
             if box.x0 < edge.x0 - 1 or box.y0 < edge.y0 - 1 or box.x1 > edge.x1 + 1 or box.y1 > edge.y1 + 1]
    for i, (first, a) in enumerate(boxes):
        for second, b in boxes[i + 1:]:
            # a pixel of tolerance: neighbouring tick labels may touch
            if min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1:
                found.append((first, second))
    return found


def _drawn_texts(fig):
    """Every visible, non-empty text that is drawn: tick labels only of the ticks inside the view."""
    from matplotlib.text import Text

    ticks, drawn_ticks = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((tick.label1, tick.label2))
                if ax.get_visible() and low <= tick.get_loc() <= high:
                    drawn_ticks.update(label for label in (tick.label1, tick.label2) if label.get_visible())
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text in ticks and text not in drawn_ticks:
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        yield text


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    problems = overlapping_text(fig)
    if problems:
        plt.close(fig)
        raise RuntimeError(f"overlapping labels: {problems[:3]}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
