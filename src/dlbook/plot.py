"""The book's figures: one house style and the helpers the chapters draw with.

Call :func:`use_style` once at the top of a notebook. Every helper takes an optional ``ax`` and
returns the axes it drew on, so figures compose; none calls ``plt.show()``.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["PALETTE", "use_style", "subplots", "plot_curves", "plot_history",
           "plot_decision_boundary", "show_matrix", "show_images"]

# A colour-blind-safe palette (Okabe & Ito), in the order lines take it.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

_STYLE = {
    "figure.figsize": (6.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.autolayout": True,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "lines.linewidth": 1.8,
    "legend.frameon": False,
    "image.cmap": "viridis",
    # Stored notebook outputs must not change from run to run.
    "svg.hashsalt": "dlbook",
    "path.simplify": True,
}


def use_style() -> None:
    """Apply the house style to matplotlib (idempotent)."""
    mpl.rcParams.update(_STYLE)


def subplots(nrows: int = 1, ncols: int = 1, *, width: float | None = None,
             height: float | None = None, **kwargs):
    """``plt.subplots`` in the house style; the default size grows with the number of panels."""
    use_style()
    w = width if width is not None else min(3.2 * ncols + 0.6, 11.0)
    h = height if height is not None else 3.0 * nrows + 0.3
    return plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False, **kwargs)


def _axes(ax):
    if ax is None:
        _, axes = subplots()
        return axes[0, 0]
    return ax


def plot_curves(x: np.ndarray, curves: Mapping[str, np.ndarray], *, xlabel: str, ylabel: str,
                title: str | None = None, ax=None, styles: Mapping[str, str] | None = None):
    """Draw several labelled curves y(x) on one axes.

    Args:
        x: (P,) abscissae shared by every curve.
        curves: label -> (P,) values.
        xlabel, ylabel: axis labels (with units where there are any).
        styles: optional label -> matplotlib format string, e.g. ``"--"``.
    """
    ax = _axes(ax)
    for label, y in curves.items():
        fmt = (styles or {}).get(label, "-")
        ax.plot(x, y, fmt, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    return ax


def plot_history(histories, *, metrics: Sequence[str] = ("loss", "acc"), axes=None):
    """Loss and accuracy per epoch for one or more runs.

    Args:
        histories: a :class:`dlbook.train.History`, or a mapping run name -> History. Each History
            holds ``train_<metric>`` and optionally ``val_<metric>`` lists.
        metrics: the metric stems to draw, one panel each.
    Returns:
        The array of axes.
    """
    if hasattr(histories, "metrics"):
        histories = {"": histories}
    if axes is None:
        _, axes = subplots(1, len(metrics))
        axes = axes[0]
    names = {"loss": "cross-entropy loss", "acc": "accuracy"}
    for ax, metric in zip(axes, metrics):
        for i, (run, history) in enumerate(histories.items()):
            colour = PALETTE[i % len(PALETTE)]
            for split, fmt in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                if key in history:
                    values = history[key]
                    label = " ".join(p for p in (run, split) if p)
                    ax.plot(np.arange(1, len(values) + 1), values, fmt, color=colour, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(names.get(metric, metric))
        ax.legend()
    return axes


def plot_decision_boundary(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, *,
                           ax=None, resolution: int = 200, margin: float = 0.5, title: str | None = None):
    """Shade the classes ``predict`` assigns over the plane and scatter the points ``(X, y)``.

    Args:
        predict: maps (P, 2) points to (P,) integer labels.
        X: (N, 2) points; y: (N,) labels.
    """
    ax = _axes(ax)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected (N, 2) points, got shape {X.shape}")
    (x0, y0), (x1, y1) = X.min(axis=0) - margin, X.max(axis=0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    labels = np.asarray(predict(np.column_stack([gx.ravel(), gy.ravel()]))).reshape(gx.shape)
    classes = np.unique(np.concatenate([np.unique(y), np.unique(labels)]))
    cmap = mpl.colors.ListedColormap([PALETTE[int(c) % len(PALETTE)] for c in classes])
    ax.contourf(gx, gy, np.searchsorted(classes, labels), levels=np.arange(len(classes) + 1) - 0.5,
                cmap=cmap, alpha=0.18)
    for c in np.unique(y):
        pts = X[y == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, color=PALETTE[int(c) % len(PALETTE)], label=f"class {c}",
                   edgecolors="white", linewidths=0.4)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def show_matrix(m: np.ndarray, *, ax=None, title: str | None = None, fmt: str = "{:g}",
                highlight: tuple[slice, slice] | None = None, cmap: str = "Blues"):
    """Draw a small 2-D array as a grid of numbered cells (worked convolution examples).

    Args:
        m: (H, W) array.
        highlight: optional ``(rows, cols)`` slices outlined in red, e.g. the current window.
    """
    ax = _axes(ax)
    m = np.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"m: expected a 2-D array, got shape {m.shape}")
    ax.imshow(m, cmap=cmap, vmin=min(m.min(), 0), vmax=max(m.max(), 1) * 1.6)
    for (i, j), value in np.ndenumerate(m):
        ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=10)
    ax.set_xticks(np.arange(-0.5, m.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.grid(which="major", visible=False)
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    if highlight is not None:
        rows, cols = highlight
        r0, r1, _ = rows.indices(m.shape[0])
        c0, c1, _ = cols.indices(m.shape[1])
        ax.add_patch(mpl.patches.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0, r1 - r0, fill=False,
                                           edgecolor="#D55E00", linewidth=2.5))
    if title:
        ax.set_title(title)
    return ax


def show_images(images: np.ndarray, *, titles: Sequence[str] | None = None, ncols: int = 8,
                cmap: str = "gray", symmetric: bool = False, width: float | None = None):
    """A grid of small images (digits, learned filters, feature maps).

    Args:
        images: (N, H, W) array.
        titles: optional N titles.
        symmetric: centre the colour scale of each image on 0 (for filters with both signs).
    Returns:
        The array of axes.
    """
    images = np.asarray(images)
    if images.ndim != 3:
        raise ValueError(f"images: expected (N, H, W), got shape {images.shape}")
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    _, axes = subplots(nrows, ncols, width=width or min(1.3 * ncols + 0.4, 11.0), height=1.4 * nrows + 0.3)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        img = images[k]
        if symmetric:
            lim = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap=cmap, vmin=-lim, vmax=lim)
        else:
            ax.imshow(img, cmap=cmap)
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    return axes
