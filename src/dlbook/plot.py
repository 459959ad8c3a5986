"""The book's figures: one house style and the helpers the chapters draw with.

Call :func:`use_style` once at the top of a notebook. Every helper takes an optional ``ax`` and
returns the axes it drew on, so figures compose; none calls ``plt.show()``.

Accessibility (WCAG 2.1: 1.4.1 use of colour, 1.4.11 non-text contrast). Colour never tells
categories apart on its own: the house cycle pairs each palette colour with its own line style,
the helpers give each class or run its own marker, and a signed matrix is drawn with a
diverging map centred on zero. The palette (Okabe & Ito's) stays distinguishable under
simulated deuteranopia, protanopia and tritanopia, and its first five colours contrast at
least 3:1 with the white background (tests/test_plot.py checks both with colorspacious).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["PALETTE", "LINESTYLES", "MARKERS", "DIVERGING_CMAP", "use_style", "subplots",
           "plot_curves", "plot_history", "plot_decision_boundary", "show_matrix", "show_images",
           "plot_graph", "plot_trajectories"]

# A colour-blind-safe palette (Okabe & Ito 2008), in the order lines take it: blue, vermillion,
# bluish green, reddish purple and black first, each at least 3:1 against white (WCAG 1.4.11);
# then orange, sky blue and yellow, too light for thin lines on white (fills and shading).
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9", "#F0E442"]
# One line style and one marker per palette colour, so that no category is told by colour alone.
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (1, 1)), (0, (8, 2)),
              (0, (3, 1, 1, 1))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
# Signed values (weights, gradients, signed feature maps): red positive, blue negative, white 0.
DIVERGING_CMAP = "RdBu_r"

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
    "axes.prop_cycle": mpl.cycler(color=PALETTE) + mpl.cycler(linestyle=LINESTYLES),
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
        styles: optional label -> matplotlib format string, e.g. ``"--"``. A curve without one
            takes the next colour and line style of the house cycle, so curves differ in both.
    """
    ax = _axes(ax)
    for label, y in curves.items():
        fmt = (styles or {}).get(label)
        if fmt is None:
            ax.plot(x, y, label=label)
        else:
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
    The split is told by the line style (train solid, val dashed); with several runs, each run
    has its own colour and marker.
    Returns:
        The array of axes.
    """
    if hasattr(histories, "metrics"):
        histories = {"": histories}
    if axes is None:
        _, axes = subplots(1, len(metrics))
        axes = axes[0]
    names = {"loss": "cross-entropy loss", "acc": "accuracy"}
    several = len(histories) > 1
    for ax, metric in zip(axes, metrics):
        for i, (run, history) in enumerate(histories.items()):
            colour = PALETTE[i % len(PALETTE)]
            marker = MARKERS[i % len(MARKERS)] if several else None
            for split, fmt in (("train", "-"), ("val", "--")):
                key = f"{split}_{metric}"
                if key in history:
                    values = history[key]
                    label = " ".join(p for p in (run, split) if p)
                    ax.plot(np.arange(1, len(values) + 1), values, fmt, color=colour, label=label,
                            marker=marker, markersize=4, markevery=max(1, len(values) // 10))
        ax.set_xlabel("epoch")
        ax.set_ylabel(names.get(metric, metric))
        ax.legend()
    return axes


def plot_decision_boundary(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, *,
                           ax=None, resolution: int = 200, margin: float = 0.5, title: str | None = None):
    """Shade the classes ``predict`` assigns over the plane and scatter the points ``(X, y)``.

    Each class has its own colour and its own marker (circle, square, triangle, ...).

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
                   marker=MARKERS[int(c) % len(MARKERS)], edgecolors="white", linewidths=0.4)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    if title:
        ax.set_title(title)
    ax.legend(loc="best")
    return ax


def show_matrix(m: np.ndarray, *, ax=None, title: str | None = None, fmt: str = "{:g}",
                highlight: tuple[slice, slice] | None = None, cmap: str | None = None):
    """Draw a small 2-D array as a grid of numbered cells (worked convolution examples).

    Args:
        m: (H, W) array.
        highlight: optional ``(rows, cols)`` slices outlined, e.g. the current window.
        cmap: the colour map; by default ``"Blues"`` from 0 up when no entry is negative, and
            the diverging :data:`DIVERGING_CMAP` centred on 0 when entries have both signs (so
            that sign is not read off a single light-to-dark scale). Either way the colours
            stay light enough for the black numbers.
    """
    ax = _axes(ax)
    m = np.asarray(m)
    if m.ndim != 2:
        raise ValueError(f"m: expected a 2-D array, got shape {m.shape}")
    signed = bool(m.min() < 0 < m.max())
    if cmap is None:
        cmap = DIVERGING_CMAP if signed else "Blues"
    if signed:
        lim = float(np.abs(m).max()) * 1.6
        ax.imshow(m, cmap=cmap, vmin=-lim, vmax=lim)
    else:
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
                                           edgecolor="#000000" if signed else PALETTE[1],
                                           linewidth=2.5))
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


def _graph_layout(names: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[float, float]]:
    """Columns by longest path from an input (left to right), rows spread evenly in each column."""
    parents: dict[str, list[str]] = {n: [] for n in names}
    for src, dst in edges:
        parents[dst].append(src)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            raise ValueError(f"edges: the graph has a cycle through {node!r}; a computational graph is acyclic")
        visiting.add(node)
        depth[node] = 1 + max((visit(p) for p in parents[node]), default=-1)
        visiting.discard(node)
        return depth[node]

    for node in names:
        visit(node)
    columns: dict[int, list[str]] = {}
    for node in names:
        columns.setdefault(depth[node], []).append(node)
    pos = {}
    for col, members in columns.items():
        for row, node in enumerate(members):
            pos[node] = (2.4 * col, 1.6 * ((len(members) - 1) / 2 - row))
    return pos


def plot_graph(nodes: Mapping[str, str], edges: Sequence[tuple[str, str]], *,
               grads: Mapping[str, str] | None = None,
               edge_labels: Mapping[tuple[str, str], str] | None = None,
               pos: Mapping[str, tuple[float, float]] | None = None, ax=None, title: str | None = None,
               width: float | None = None, height: float | None = None):
    """Draw a computational graph: a box per node, a forward arrow per edge, the backward pass in colour.

    Forward quantities (what each node computes, and its value) go in the boxes, in black;
    the backward pass (the gradient of the output with respect to each node, and the local
    derivative carried along each edge) is written in the second palette colour, under each
    box and at the middle of each edge. Only matplotlib is used.

    Args:
        nodes: name -> the text of its box, e.g. ``{"t": "t = a + u\n4.1"}``.
        edges: ``(src, dst)`` pairs in the forward direction: ``dst`` is computed from ``src``.
        grads: optional name -> text under the box, e.g. ``"dF/dt = 8.2"``.
        edge_labels: optional ``(src, dst)`` -> text on that edge, e.g. a local derivative.
        pos: optional name -> (x, y); by default a left-to-right layered layout (column = the
            longest path from an input).
    Returns:
        The axes.
    Raises:
        ValueError: on an empty graph, an edge, gradient, label or position naming an unknown
            node, a self-loop or a cycle, or a missing position.
    """
    names = list(nodes)
    if not names:
        raise ValueError("nodes: expected at least one node, got none")
    known = set(names)
    edges = [tuple(e) for e in edges]
    for i, edge in enumerate(edges):
        if len(edge) != 2:
            raise ValueError(f"edges[{i}]: expected a (src, dst) pair, got {edge!r}")
        for end in edge:
            if end not in known:
                raise ValueError(f"edges[{i}]: unknown node {end!r}; nodes are {names}")
        if edge[0] == edge[1]:
            raise ValueError(f"edges[{i}]: self-loop on {edge[0]!r}; a computational graph is acyclic")
    for key in (grads or {}):
        if key not in known:
            raise ValueError(f"grads: unknown node {key!r}; nodes are {names}")
    for key in (edge_labels or {}):
        if tuple(key) not in edges:
            raise ValueError(f"edge_labels: {key!r} is not one of the edges")
    layout = _graph_layout(names, edges)  # also rejects cycles
    if pos is not None:
        missing = [n for n in names if n not in pos]
        if missing:
            raise ValueError(f"pos: expected a position for every node, missing {missing}")
        layout = {n: (float(pos[n][0]), float(pos[n][1])) for n in names}
    if ax is None:
        xs = [p[0] for p in layout.values()]
        ys = [p[1] for p in layout.values()]
        _, axes = subplots(width=width or min(1.0 + 0.85 * (max(xs) - min(xs) + 2.4), 10.0),
                           height=height or 1.0 + 0.8 * (max(ys) - min(ys) + 1.6))
        ax = axes[0, 0]
    forward, backward = "#222222", PALETTE[1]
    for (src, dst) in edges:
        (x0, y0), (x1, y1) = layout[src], layout[dst]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color=PALETTE[0], lw=1.4, shrinkA=22, shrinkB=24))
        label = (edge_labels or {}).get((src, dst))
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.18, label, ha="center", va="bottom", fontsize=9,
                    color=backward, bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))
    for name in names:
        x, y = layout[name]
        ax.text(x, y, nodes[name], ha="center", va="center", fontsize=10, color=forward, zorder=3,
                bbox=dict(boxstyle="round,pad=0.45", fc="#EAF2FA", ec=PALETTE[0], lw=1.2))
        if grads and name in grads:
            ax.text(x, y - 0.42, grads[name], ha="center", va="top", fontsize=9, color=backward, zorder=3)
    xs = [p[0] for p in layout.values()]
    ys = [p[1] for p in layout.values()]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(f: Callable[[np.ndarray], np.ndarray], trajectories: Mapping[str, np.ndarray], *,
                      xlim: tuple[float, float], ylim: tuple[float, float], xlabel: str, ylabel: str,
                      levels: int | Sequence[float] = 12, resolution: int = 200, ax=None,
                      title: str | None = None, styles: Mapping[str, str] | None = None):
    """Contours of a function of two variables with optimisation paths drawn over them.

    Args:
        f: maps (P, 2) points to (P,) values (vectorised).
        trajectories: label -> (T, 2) sequence of points; the start is marked with a circle and
            the end with a cross. Each path has its own colour and line style.
        xlim, ylim: the plotted window, ``(low, high)``.
        levels: number of contour levels or their values.
        styles: optional label -> matplotlib format string for the path, e.g. ``".-"``.
    Returns:
        The axes.
    """
    for name, lim in (("xlim", xlim), ("ylim", ylim)):
        if len(lim) != 2 or not lim[0] < lim[1]:
            raise ValueError(f"{name}: expected (low, high) with low < high, got {lim!r}")
    paths = {}
    for label, path in trajectories.items():
        path = np.asarray(path, dtype=np.float64)
        if path.ndim != 2 or path.shape[1] != 2 or len(path) == 0:
            raise ValueError(f"trajectories[{label!r}]: expected a (T, 2) array of points, got shape {path.shape}")
        paths[label] = path
    ax = _axes(ax)
    gx, gy = np.meshgrid(np.linspace(*xlim, resolution), np.linspace(*ylim, resolution))
    values = np.asarray(f(np.column_stack([gx.ravel(), gy.ravel()]))).reshape(gx.shape)
    ax.contour(gx, gy, values, levels=levels, colors="#999999", linewidths=0.7)
    for i, (label, path) in enumerate(paths.items()):
        colour = PALETTE[i % len(PALETTE)]
        fmt = (styles or {}).get(label)
        if fmt is None:
            ax.plot(path[:, 0], path[:, 1], marker=".", linestyle=LINESTYLES[i % len(LINESTYLES)],
                    color=colour, label=label, markersize=3, linewidth=1.2)
        else:
            ax.plot(path[:, 0], path[:, 1], fmt, color=colour, label=label, markersize=3,
                    linewidth=1.2)
        ax.plot(path[0, 0], path[0, 1], "o", color=colour, markersize=6, markerfacecolor="none")
        ax.plot(path[-1, 0], path[-1, 1], "x", color=colour, markersize=7)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if paths:
        ax.legend(loc="best")
    return ax
