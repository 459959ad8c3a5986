"""Block diagrams of networks, drawn in code: boxes, arrows, additions and concatenations.

A :class:`Diagram` places nodes on a grid of *steps* (along the flow) and *lanes* (across it)
and draws them at a fixed scale, one inch per inch, so that every text keeps the size it was
given (labels 10 pt, everything else 9 pt) in the stored figure and on the page. The flow runs
down the page (``direction="down"``, steps are rows, lanes are columns) or left to right
(``"right"``, steps are columns, lanes are rows). Example, a residual block::

    from dlbook.diagrams import Diagram
    d = Diagram("down")
    d.box("x", "input", kind="input", shape="56×56×64")            # at (0, 0)
    d.box("c1", "conv 3×3, 64", kind="conv", shape="56×56×64")      # next step, same lane
    d.box("c2", "conv 3×3, 64", kind="conv")
    d.add("sum")                                                     # the ⊕ node, at (3, 0)
    d.box("out", "ReLU", kind="activation")
    d.chain("x", "c1", "c2", "sum", "out")
    d.arrow("x", "sum", via=1, label="identity")                     # around, in lane 1
    fig = d.draw(title="basic block")

API (stable; other chapters draw with it):

- ``Diagram(direction="down")``.
- ``box(name, label, *, kind, shape=None, at=None, span=None) -> name``: a box; ``label`` may
  hold several lines; ``shape`` is a second, smaller line (an output shape, e.g.
  :func:`format_shape`'s ``"28×28×6"``); ``kind`` is one of :data:`KINDS`; ``at=(step, lane)``
  (by default one step after the previous node, in its lane; each distinct step is a row as
  deep as its deepest node, lanes are evenly spaced by the widest node, and fractional values
  are allowed, e.g. an input centred over four branches at lane 1.5); ``span=(lo, hi)``
  stretches the box across lanes ``lo`` to ``hi`` (a concatenation gathering branches).
- ``concat(name, label="concatenate", *, shape=None, at=None, span=None)``: a box of kind
  ``"concat"``.
- ``add(name, *, at=None)``: an addition node, a circle with a plus (⊕).
- ``arrow(src, dst, *, label=None, route="auto", via=None)``: an arrow from ``src`` to a
  later step. ``route="auto"`` goes straight when the two nodes overlap across the flow, and
  otherwise leaves along the flow, crosses over just before ``dst``'s row (at one height for
  every node of the row) and enters it;
  ``"across_first"`` leaves ``src`` from its side, crosses to ``dst``'s lane and runs along into
  it (to a shortcut's projection box); ``"along_first"`` runs along to ``dst``'s step and enters
  it from the side (into an addition); ``via=lane`` goes around: out of ``src``'s side to that
  lane, along it, and into ``dst``'s side (a residual shortcut).
- ``chain(*names)``: arrows between consecutive nodes.
- ``draw(*, title=None, legend=True) -> Figure``; ``draw_diagrams(diagrams, titles=None, *,
  legend=True, max_width=MAX_WIDTH) -> Figure`` draws several side by side, aligned at the top,
  with one legend (of the kinds used) for all. A figure wider than ``max_width`` inches (the
  text column) raises ``ValueError``: the page would shrink its text below 9 pt.
- ``format_shape(shape, order="HWC")``: ``(1, 6, 28, 28)`` -> ``"28×28×6"``.
- ``describe_layer(module) -> (label, kind)``: a box's label and kind read off a torch layer,
  e.g. ``Conv2d(3, 96, 11, stride=4)`` -> ``("conv 11×11, 96, stride 4", "conv")``, so that a
  diagram built from a model (with :func:`dlbook.models.summary`'s shapes) cannot drift from it.

Pictures that do not flow one way (a recurrence looping back into its cell, a state passed
backward in time, the LSTM's element-wise products) are drawn with a :class:`Sketch`: nodes at
centres given in inches, ``op`` nodes (⊙, ⊕), arrows in any direction, straight or curved, with
their own line styles, and self-loops; the same fixed scale and the same legibility checks (see
its docstring).

Accessibility: each kind of box has its own fill pattern (hatching) in a strip along its left
edge and its own border style, and its label says what it is; colour never tells kinds apart
alone. ``draw`` checks the finished drawing and raises ``ValueError`` if two texts overlap, a
text leaves its box, two nodes overlap or an arrow crosses a node it does not connect, so a
diagram that draws is legible. Deterministic: no randomness, fixed sizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.path import Path

from dlbook.plot import PALETTE, use_style

__all__ = ["ARROW_STYLES", "KINDS", "MAX_WIDTH", "SKETCH_KINDS", "Diagram", "Sketch",
           "describe_layer", "draw_diagrams", "format_shape"]


@dataclass(frozen=True)
class _Kind:
    colour: str  # the strip's colour (never the only cue)
    hatch: str  # the strip's fill pattern
    linestyle: str | tuple  # the box border
    name: str  # what the legend calls it


# One fill pattern and one border style per kind of box.
KINDS: dict[str, _Kind] = {
    "input": _Kind("#777777", "", "-", "input / output"),
    "output": _Kind("#777777", "", "-", "input / output"),
    "conv": _Kind(PALETTE[0], "////", "-", "convolution"),
    "pool": _Kind(PALETTE[1], "...", "--", "pooling"),
    "fc": _Kind(PALETTE[2], "xxx", "-", "fully connected"),
    "activation": _Kind(PALETTE[5], "", ":", "activation"),
    "norm": _Kind(PALETTE[3], "---", "-.", "normalisation"),
    "dropout": _Kind(PALETTE[6], "oo", (0, (1, 1)), "dropout"),
    "concat": _Kind(PALETTE[4], "||", "-", "concatenation"),
}

LABEL_PT, SMALL_PT = 10, 9  # label text; shape lines, arrow labels, legend, never below 9 pt
_PAD = 0.07  # inches between a box's text and its border
_STRIP = 0.13  # width of the patterned strip, inches
_RADIUS = 0.15  # the addition node
_GAP_ALONG, _GAP_ACROSS = 0.34, 0.24  # inches between neighbouring nodes
_MARGIN = 0.12
# inches: the book's text column is 672 px wide (1280 px window), and the stored PNG adds
# 0.1 inch of padding on each side at 100 dpi, so 6.5 inches show at full size
MAX_WIDTH = 6.5
_DIRECTIONS = ("down", "right")
_ROUTES = ("auto", "across_first", "along_first")


def format_shape(shape: Sequence[int], order: str = "HWC") -> str:
    """An activation's shape as a diagram writes it: ``(1, 6, 28, 28)`` -> ``"28×28×6"``.

    Args:
        shape: ``(N, C, H, W)``, ``(C, H, W)``, ``(N, D)`` or ``(D,)`` (a leading batch axis is
            dropped when there are four or two axes).
        order: ``"HWC"`` (height × width × channels, as the sources print shapes) or ``"CHW"``.
    """
    dims = tuple(int(s) for s in shape)
    if order not in ("HWC", "CHW"):
        raise ValueError(f"order: expected 'HWC' or 'CHW', got {order!r}")
    if len(dims) in (2, 4):
        dims = dims[1:]
    if len(dims) == 1:
        return str(dims[0])
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError(f"shape: expected (N, C, H, W), (C, H, W), (N, D) or (D,) with positive "
                         f"sizes, got {tuple(shape)!r}")
    c, h, w = dims
    return f"{h}×{w}×{c}" if order == "HWC" else f"{c}×{h}×{w}"


def _pair(value) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def _size_text(value) -> str:
    h, w = _pair(value)
    return f"{h}×{w}"


def describe_layer(module) -> tuple[str, str]:
    """A box's label and kind for a torch layer, read off its attributes (torch not imported).

    Conv2d -> ``"conv K×K, F"`` (``", stride S"`` when S > 1, ``", G groups"`` when grouped);
    MaxPool2d / AvgPool2d -> ``"max pool K×K"`` (stride likewise); AdaptiveAvgPool2d(1) ->
    ``"global average pool"``; Linear -> ``"fully connected, D"``; ReLU / Tanh / Sigmoid;
    BatchNorm2d / BatchNorm1d -> ``"batch norm"``; LocalResponseNorm -> ``"LRN, size n"``;
    Dropout -> ``"dropout p"``. Any other layer raises ``ValueError``: label it by hand.

    Returns:
        ``(label, kind)`` with ``kind`` a key of :data:`KINDS`.
    """
    kind = type(module).__name__
    stride = getattr(module, "stride", 1)
    strided = stride is not None and _pair(stride) != (1, 1)
    if kind == "Conv2d":
        label = f"conv {_size_text(module.kernel_size)}, {module.out_channels}"
        if strided:
            label += f", stride {_pair(stride)[0]}"
        if getattr(module, "groups", 1) > 1:
            label += f", {module.groups} groups"
        return label, "conv"
    if kind in ("MaxPool2d", "AvgPool2d"):
        name = "max" if kind == "MaxPool2d" else "average"
        label = f"{name} pool {_size_text(module.kernel_size)}"
        if _pair(stride) != _pair(module.kernel_size):
            label += f", stride {_pair(stride)[0]}"
        return label, "pool"
    if kind == "AdaptiveAvgPool2d" and _pair(module.output_size) == (1, 1):
        return "global average pool", "pool"
    if kind == "Linear":
        return f"fully connected, {module.out_features}", "fc"
    if kind in ("ReLU", "Tanh", "Sigmoid"):
        return kind, "activation"
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return "batch norm", "norm"
    if kind == "LocalResponseNorm":
        return f"LRN, size {module.size}", "norm"
    if kind == "Dropout":
        return f"dropout {module.p:g}", "dropout"
    raise ValueError(f"module: describe_layer knows Conv2d, MaxPool2d, AvgPool2d, "
                     f"AdaptiveAvgPool2d(1), Linear, ReLU, Tanh, Sigmoid, BatchNorm, "
                     f"LocalResponseNorm and Dropout, got {kind}; label it by hand")


@dataclass
class _Node:
    name: str
    label: str
    kind: str  # a key of KINDS, or "add"
    shape: str | None
    step: float
    lane: float
    span: tuple[float, float] | None
    # filled in by the layout, in inches: centre and half extents along / across the flow
    u: float = 0.0
    v: float = 0.0
    hu: float = 0.0
    hv: float = 0.0
    texts: list = field(default_factory=list)


@dataclass
class _Arrow:
    src: str
    dst: str
    label: str | None
    route: str
    via: float | None
    text: object = None  # the label's Text, made by _measure
    label_size: tuple[float, float] = (0.0, 0.0)  # its width and height, inches


def _finite_pair(value, what: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a pair of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{what}: expected finite numbers, got {value!r}")
    return a, b


class Diagram:
    """A block diagram: nodes on a (step, lane) grid and arrows between them (module docstring)."""

    def __init__(self, direction: str = "down") -> None:
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction: expected one of {_DIRECTIONS}, got {direction!r}")
        self.direction = direction
        self.nodes: dict[str, _Node] = {}
        self.arrows: list[_Arrow] = []
        self._prefix = ""  # the panel's prefix to the artists' gids, set while drawing

    # -- building -------------------------------------------------------------------------
    def _place(self, name: str, label: str, kind: str, shape, at, span) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        if name in self.nodes:
            raise ValueError(f"name: a node called {name!r} exists already")
        if kind != "add" and (not isinstance(label, str) or not label.strip()):
            raise ValueError(f"label: expected a non-empty string for node {name!r}, got {label!r}")
        if shape is not None and (not isinstance(shape, str) or not shape.strip()):
            raise ValueError(f"shape: expected None or a non-empty string, got {shape!r}")
        if at is None:
            last = list(self.nodes.values())[-1] if self.nodes else None
            step, lane = (last.step + 1, last.lane) if last else (0.0, 0.0)
        else:
            step, lane = _finite_pair(at, f"at (node {name!r})")
        if span is not None:
            lo, hi = _finite_pair(span, f"span (node {name!r})")
            if not lo <= lane <= hi:
                raise ValueError(f"span (node {name!r}): expected lo <= lane <= hi, got span "
                                 f"{span!r} for lane {lane:g}")
            span = (lo, hi)
        for other in self.nodes.values():
            if other.step == step and other.lane == lane:
                raise ValueError(f"at: node {name!r} would sit on node {other.name!r} at "
                                 f"(step {step:g}, lane {lane:g})")
        self.nodes[name] = _Node(name, label, kind, shape, step, lane, span)
        return name

    def box(self, name: str, label: str, *, kind: str, shape: str | None = None, at=None,
            span=None) -> str:
        """Add a box of ``kind`` (a key of :data:`KINDS`); returns its name."""
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {sorted(KINDS)}, got {kind!r}")
        return self._place(name, label, kind, shape, at, span)

    def concat(self, name: str, label: str = "concatenate", *, shape: str | None = None,
               at=None, span=None) -> str:
        """Add a concatenation box (kind ``"concat"``); ``span`` may stretch it over lanes."""
        return self._place(name, label, "concat", shape, at, span)

    def add(self, name: str, *, at=None) -> str:
        """Add an addition node (⊕)."""
        return self._place(name, "", "add", None, at, None)

    def arrow(self, src: str, dst: str, *, label: str | None = None, route: str = "auto",
              via: float | None = None) -> None:
        """Add an arrow from ``src`` to ``dst`` (a later step); see the module docstring."""
        for end in (src, dst):
            if end not in self.nodes:
                raise ValueError(f"arrow: unknown node {end!r}; nodes are {list(self.nodes)}")
        if src == dst:
            raise ValueError(f"arrow: from {src!r} to itself")
        if self.nodes[dst].step <= self.nodes[src].step:
            raise ValueError(f"arrow {src!r} -> {dst!r}: expected the destination at a later "
                             f"step, got step {self.nodes[src].step:g} -> "
                             f"{self.nodes[dst].step:g}")
        if route not in _ROUTES:
            raise ValueError(f"route: expected one of {_ROUTES}, got {route!r}")
        if via is not None:
            via = float(via)
            if not math.isfinite(via):
                raise ValueError(f"via: expected a finite lane, got {via!r}")
            if route != "auto":
                raise ValueError("via: goes with route='auto' only")
            lanes = {self.nodes[src].lane, self.nodes[dst].lane}
            if via in lanes:
                raise ValueError(f"via: lane {via:g} is a lane of {src!r} or {dst!r}; a route "
                                 "around needs another lane")
        if any(a.src == src and a.dst == dst for a in self.arrows):
            raise ValueError(f"arrow: {src!r} -> {dst!r} exists already")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise ValueError(f"label: expected None or a non-empty string, got {label!r}")
        self.arrows.append(_Arrow(src, dst, label, route, via))

    def chain(self, *names: str) -> None:
        """Arrows between consecutive names: ``chain("a", "b", "c")`` draws a->b and b->c."""
        if len(names) < 2:
            raise ValueError(f"chain: expected at least two nodes, got {len(names)}")
        for src, dst in pairwise(names):
            self.arrow(src, dst)

    def draw(self, *, title: str | None = None, legend: bool = True):
        """Draw the diagram in a new figure at its natural size; returns the figure."""
        return draw_diagrams([self], titles=None if title is None else [title], legend=legend)

    # -- layout (inches; u along the flow, v across it) -----------------------------------
    def _measure(self, ax, renderer) -> None:
        """Create each node's texts and size the node to them."""
        dpi = ax.figure.dpi
        for node in self.nodes.values():
            node.texts = []
            if node.kind == "add":
                node.hu = node.hv = _RADIUS
                continue
            label = ax.text(0, 0, node.label, fontsize=LABEL_PT, ha="center", va="center",
                            color="#000000", zorder=4, gid=f"label:{self._prefix}{node.name}")
            node.texts.append(label)
            if node.shape:
                node.texts.append(ax.text(0, 0, node.shape, fontsize=SMALL_PT, ha="center",
                                          va="center", color="#333333", zorder=4,
                                          gid=f"shape:{self._prefix}{node.name}"))
            sizes = [t.get_window_extent(renderer) for t in node.texts]
            width = max(s.width for s in sizes) / dpi + 2 * _PAD + _STRIP
            height = sum(s.height for s in sizes) / dpi + 2 * _PAD
            hx, hy = width / 2, height / 2
            node.hu, node.hv = (hy, hx) if self.direction == "down" else (hx, hy)
        for a in self.arrows:
            a.text = None
            if a.label:
                a.text = ax.text(0, 0, a.label, fontsize=SMALL_PT, zorder=4,
                                 gid=f"arrowlabel:{self._prefix}{a.src}->{self._prefix}{a.dst}",
                                 bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"})
                box = a.text.get_window_extent(renderer)
                a.label_size = (box.width / dpi, box.height / dpi)

    def _layout(self) -> tuple[float, float]:
        """Centres from the grid. Returns the extent (u, v) in inches.

        Along the flow, each distinct step is a row (a column when the flow runs right) as deep
        as its deepest node; across it, lanes are evenly spaced by the widest node.
        """
        nodes = [n for n in self.nodes.values() if n.span is None]
        pitch_v = 2 * max((n.hv for n in nodes), default=_RADIUS) + _GAP_ACROSS
        depth = {}
        for n in self.nodes.values():
            depth[n.step] = max(depth.get(n.step, 0.0), n.hu)
        centre, u = {}, _GAP_ALONG / 2
        self._row_start = {}  # where each step's row begins along the flow (its deepest node)
        for step in sorted(depth):
            centre[step] = u + depth[step]
            self._row_start[step] = u
            u += 2 * depth[step] + _GAP_ALONG
        lanes = [n.lane for n in self.nodes.values()] + [a.via for a in self.arrows if a.via
                                                          is not None]
        for n in self.nodes.values():
            if n.span is not None:
                lanes += list(n.span)
        l0 = min(lanes)
        self._l0, self._pitch_v, self._shift = l0, pitch_v, 0.0
        for n in self.nodes.values():
            n.u = centre[n.step]
            if n.span is None:
                n.v = (n.lane - l0) * pitch_v + pitch_v / 2
            else:  # stretched over lanes lo..hi: from lo's left edge to hi's right edge
                lo = (n.span[0] - l0) * pitch_v + pitch_v / 2
                hi = (n.span[1] - l0) * pitch_v + pitch_v / 2
                n.v = (lo + hi) / 2
                n.hv = max(n.hv, (hi - lo) / 2 + pitch_v / 2 - _GAP_ACROSS / 2)
        extent_u = max(n.u + n.hu for n in self.nodes.values()) + _GAP_ALONG / 2
        # across the flow: from the first node's (or route's) edge to the last's, where a
        # route around its lane carries its label on the far side (down) or above it (right)
        low = [n.v - n.hv for n in self.nodes.values()]
        high = [n.v + n.hv for n in self.nodes.values()]
        for a in self.arrows:
            if a.via is not None:
                v = self._via_v(a.via)
                width, height = a.label_size
                low.append(v - 0.05 - (height + 0.1 if self.direction == "right" else 0))
                high.append(v + 0.05 + (width + 0.1 if self.direction == "down" else 0))
        self._shift = _GAP_ACROSS / 2 - min(low)
        for n in self.nodes.values():
            n.v += self._shift
        return extent_u, max(high) - min(low) + _GAP_ACROSS

    def _via_v(self, lane: float) -> float:
        """The across-flow position of a route around, in lane ``lane``."""
        return (lane - self._l0) * self._pitch_v + self._pitch_v / 2 + self._shift

    def _size(self) -> tuple[float, float]:
        """Width and height in inches (after _measure)."""
        u, v = self._layout()
        return (v, u) if self.direction == "down" else (u, v)

    def _xy(self, u: float, v: float, origin: tuple[float, float], size) -> tuple[float, float]:
        x0, y0 = origin
        if self.direction == "down":
            return x0 + v, y0 + size[1] - u
        return x0 + u, y0 + size[1] - v

    def _route(self, a: _Arrow) -> list[tuple[float, float]]:
        """The arrow's corner points in (u, v)."""
        s, d = self.nodes[a.src], self.nodes[a.dst]
        if a.via is not None:
            v_via = self._via_v(a.via)
            side_s = 1 if v_via > s.v else -1
            side_d = 1 if v_via > d.v else -1
            return [(s.u, s.v + side_s * s.hv), (s.u, v_via), (d.u, v_via),
                    (d.u, d.v + side_d * d.hv)]
        if a.route == "across_first":
            side = 1 if d.v > s.v else -1
            return [(s.u, s.v + side * s.hv), (s.u, d.v), (d.u - d.hu, d.v)]
        if a.route == "along_first":
            side = 1 if s.v > d.v else -1
            return [(s.u + s.hu, s.v), (d.u, s.v), (d.u, d.v + side * d.hv)]
        lo, hi = max(s.v - s.hv, d.v - d.hv), min(s.v + s.hv, d.v + d.hv)
        if lo < hi - 1e-9:  # the nodes overlap across the flow: a straight arrow
            v = s.v if d.v - d.hv < s.v < d.v + d.hv else d.v
            if not lo <= v <= hi:
                v = (lo + hi) / 2
            return [(s.u + s.hu, v), (d.u - d.hu, v)]
        # cross over in the gap before dst's row, at one height for every node of that row
        um = self._row_start[d.step] - _GAP_ALONG / 2
        return [(s.u + s.hu, s.v), (um, s.v), (um, d.v), (d.u - d.hu, d.v)]


def _tint(colour: str, amount: float) -> tuple[float, float, float]:
    r, g, b = to_rgb(colour)
    return (1 - amount + amount * r, 1 - amount + amount * g, 1 - amount + amount * b)


def _render(d: Diagram, ax, origin, size) -> None:
    """Draw ``d`` (measured and laid out) with its lower-left corner at ``origin`` (inches)."""
    p = d._prefix
    for node in d.nodes.values():
        x, y = d._xy(node.u, node.v, origin, size)
        hx, hy = (node.hv, node.hu) if d.direction == "down" else (node.hu, node.hv)
        if node.kind == "add":
            ax.add_patch(Circle((x, y), _RADIUS, facecolor="white", edgecolor="#000000", lw=1.4,
                                zorder=3, gid=f"add:{p}{node.name}"))
            arm = _RADIUS * 0.62
            for xs, ys in (([x - arm, x + arm], [y, y]), ([x, x], [y - arm, y + arm])):
                ax.plot(xs, ys, color="#000000", lw=1.4, linestyle="-", zorder=4)
            continue
        kind = KINDS[node.kind]
        io = node.kind in ("input", "output")
        style = "round,pad=0,rounding_size=0.08" if io else "square,pad=0"
        ax.add_patch(FancyBboxPatch((x - hx, y - hy), 2 * hx, 2 * hy, boxstyle=style,
                                    facecolor="white" if io else _tint(kind.colour, 0.12),
                                    edgecolor="#000000", lw=2.0 if io else 1.2,
                                    linestyle=kind.linestyle, zorder=2, gid=f"box:{p}{node.name}"))
        if not io:
            ax.add_patch(Rectangle((x - hx, y - hy), _STRIP, 2 * hy,
                                   facecolor=_tint(kind.colour, 0.45), edgecolor=kind.colour,
                                   hatch=kind.hatch, lw=0, zorder=2.5, gid=f"strip:{p}{node.name}"))
        xt = x + (0 if io else _STRIP / 2)
        if len(node.texts) == 1:
            node.texts[0].set_position((xt, y))
        else:
            label, shape = node.texts
            h_label = label.get_window_extent().height / ax.figure.dpi
            h_shape = shape.get_window_extent().height / ax.figure.dpi
            top = y + (h_label + h_shape) / 2
            label.set_position((xt, top - h_label / 2))
            shape.set_position((xt, top - h_label - h_shape / 2))
    for a in d.arrows:
        points = [d._xy(u, v, origin, size) for u, v in d._route(a)]
        path = Path(points, [Path.MOVETO] + [Path.LINETO] * (len(points) - 1))
        patch = ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>,head_length=5,head_width=3",
                                             color="#000000", lw=1.2, shrinkA=0, shrinkB=0,
                                             zorder=1.5, gid=f"arrow:{p}{a.src}->{p}{a.dst}"))
        patch.route_points = points  # the corners, in inches, for the legibility check
        if a.label:
            # the label sits beside the longest segment, on a white ground
            segments = list(pairwise(points))
            (x0, y0), (x1, y1) = max(segments, key=lambda s: abs(s[1][0] - s[0][0])
                                     + abs(s[1][1] - s[0][1]))
            vertical = abs(x1 - x0) < 1e-9
            pos = ((x0 + x1) / 2 + (0.05 if vertical else 0), (y0 + y1) / 2 + (0 if vertical
                                                                                 else 0.05))
            a.text.set_position(pos)
            a.text.set_horizontalalignment("left" if vertical else "center")
            a.text.set_verticalalignment("center" if vertical else "bottom")


def _legend_items(diagrams) -> list[str]:
    kinds = []
    for d in diagrams:
        for node in d.nodes.values():
            key = "add" if node.kind == "add" else KINDS[node.kind].name
            if key not in kinds:
                kinds.append(key)
    return kinds


def _draw_legend(ax, items, width: float, renderer) -> tuple[float, float]:
    """One or more rows of swatches along the bottom; returns the height and width used."""
    by_name = {k.name: k for k in KINDS.values()}
    dpi = ax.figure.dpi
    x, row_h, rows = _MARGIN, 0.26, [[]]
    used = 0.0
    placed = []
    for item in items:
        text = "addition (⊕)" if item == "add" else item
        t = ax.text(0, 0, text, fontsize=SMALL_PT, va="center", ha="left", gid=f"legend:{item}")
        w = 0.3 + t.get_window_extent(renderer).width / dpi + 0.25
        if x + w > width - _MARGIN and rows[-1]:
            rows.append([])
            x = _MARGIN
        rows[-1].append(item)
        placed.append((item, t, x, len(rows) - 1))
        x += w
        used = max(used, x)
    height = len(rows) * row_h + 0.08
    for item, t, x, row in placed:
        yc = height - 0.04 - row_h * (row + 0.5)
        if item == "add":
            ax.add_patch(Circle((x + 0.11, yc), 0.08, facecolor="white", edgecolor="#000000",
                                lw=1.0, gid="legendswatch:add"))
            for xs, ys in (([x + 0.06, x + 0.16], [yc, yc]),
                           ([x + 0.11] * 2, [yc - 0.05, yc + 0.05])):
                ax.plot(xs, ys, color="#000000", lw=1.0, linestyle="-")
        else:
            kind = by_name[item]
            io = item == "input / output"
            ax.add_patch(Rectangle((x, yc - 0.08), 0.22, 0.16, facecolor=_tint(kind.colour, 0.45)
                                   if not io else "white", edgecolor="#000000",
                                   lw=2.0 if io else 1.0, linestyle=kind.linestyle,
                                   gid=f"legendswatch:{item}"))
            if kind.hatch:
                ax.add_patch(Rectangle((x, yc - 0.08), 0.22, 0.16, facecolor="none",
                                       edgecolor=kind.colour, hatch=kind.hatch, lw=0))
        t.set_position((x + 0.3, yc))
    return height, used - 0.25 + _MARGIN


def _boxes_overlap(a, b, tol: float = 0.5) -> bool:
    return (a.x0 < b.x1 - tol and b.x0 < a.x1 - tol and a.y0 < b.y1 - tol and b.y0 < a.y1 - tol)


def _first_overlap(extents) -> tuple | None:
    """The names of the first two of ``extents`` ((name, bbox) pairs) that overlap, or None."""
    for i, (name_i, bb_i) in enumerate(extents):
        for name_j, bb_j in extents[i + 1:]:
            if _boxes_overlap(bb_i, bb_j):
                return name_i, name_j
    return None


def _inside(bb, box, tol: float = 0.0) -> bool:
    return (bb.x0 >= box.x0 - tol and bb.x1 <= box.x1 + tol and bb.y0 >= box.y0 - tol
            and bb.y1 <= box.y1 + tol)


def _check_overlaps(texts, nodes, text_message: str) -> None:
    """No two texts (``texts``: (name, bbox) pairs) overlap, nor two nodes (name -> bbox)."""
    pair = _first_overlap(texts)
    if pair:
        raise ValueError(text_message.format(*pair))
    pair = _first_overlap(list(nodes.items()))
    if pair:
        raise ValueError(f"nodes overlap: {pair[0]!r} and {pair[1]!r}")


def _check_in_figure(fig, texts) -> None:
    for name, bb in texts:
        if not _inside(bb, fig.bbox, tol=0.5):
            raise ValueError(f"text {name!r} leaves the figure")


def _check(fig, diagrams) -> None:
    """Raise ValueError if the drawing is not legible (module docstring)."""
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [(t.get_gid() or t.get_text(), t.get_window_extent(renderer)) for t in ax.texts]
    patches = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches
               if p.get_gid() and p.get_gid().split(":")[0] in ("box", "add")}
    _check_overlaps(texts, patches,
                    "labels overlap: {!r} and {!r}; shorten them or move the nodes apart")
    for gid, bb in texts:
        kind, _, owner = gid.partition(":")
        if kind in ("label", "shape"):
            if not _inside(bb, patches[f"box:{owner}"], tol=0.5):
                raise ValueError(f"text {gid!r} leaves its box")
        else:
            for pname, box in patches.items():
                if _boxes_overlap(bb, box):
                    raise ValueError(f"text {gid!r} overlaps node {pname!r}")
    for p in ax.patches:
        gid = p.get_gid() or ""
        if not gid.startswith("arrow:"):
            continue
        src, dst = gid[len("arrow:"):].split("->")
        pts = ax.transData.transform(p.route_points)
        for (x0, y0), (x1, y1) in pairwise(pts):
            lo_x, hi_x, lo_y, hi_y = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
            for pname, box in patches.items():
                if pname.split(":", 1)[1] in (src, dst):
                    continue
                if lo_x < box.x1 - 1 and box.x0 + 1 < hi_x + 0.01 and lo_y < box.y1 - 1 \
                        and box.y0 + 1 < hi_y + 0.01:
                    raise ValueError(f"arrow {src!r} -> {dst!r} crosses node {pname!r}")
    _check_in_figure(fig, texts)


def draw_diagrams(diagrams: Sequence[Diagram], titles: Sequence[str] | None = None, *,
                  legend: bool = True, max_width: float = MAX_WIDTH):
    """Draw diagrams side by side, each at its natural size, with one legend below.

    The figure is as wide as its contents at one inch per inch; ``max_width`` (inches) is the
    widest the page shows at full size (a wider figure would be scaled down and its 9 pt texts
    with it), so a wider diagram raises: draw it with ``direction="down"`` or split it.

    Returns:
        The figure. Its single axes spans it, one data unit per inch; artists carry gids:
        ``box:<name>``, ``add:<name>``, ``arrow:<src>-><dst>``, ``label:<name>``,
        ``shape:<name>``, ``arrowlabel:<src>-><dst>``, ``legend:<kind>``, ``title:<k>``
        (node names get a ``<k>.`` panel prefix when there are several diagrams).
    Raises:
        ValueError: no diagram, an empty diagram, titles of the wrong number, a figure wider
            than ``max_width``, or a drawing that would not be legible (overlapping texts or
            nodes, a text outside its box, an arrow across a node).
    """
    diagrams = list(diagrams)
    if not diagrams:
        raise ValueError("diagrams: expected at least one Diagram, got none")
    for k, d in enumerate(diagrams):
        if not isinstance(d, Diagram):
            raise TypeError(f"diagrams[{k}]: expected a Diagram, got {type(d).__name__}")
        if not d.nodes:
            raise ValueError(f"diagrams[{k}]: the diagram has no nodes")
    if titles is not None and len(titles) != len(diagrams):
        raise ValueError(f"titles: expected {len(diagrams)} titles, got {len(titles)}")
    use_style()
    fig = plt.figure(figsize=(4, 3))
    fig.set_layout_engine("none")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    renderer = fig.canvas.get_renderer()
    sizes = []
    for k, d in enumerate(diagrams):
        d._prefix = f"{k}." if len(diagrams) > 1 else ""
        d._measure(ax, renderer)
        sizes.append(d._size())
    title_h = 0.3 if titles else 0.0
    panels = [w for w, _ in sizes]  # a panel is as wide as its diagram or its title
    title_texts = []
    for k, title in enumerate(titles or []):
        text = ax.text(0, 0, title, fontsize=LABEL_PT, fontweight="bold", ha="center",
                       va="center", gid=f"title:{k}")
        title_texts.append(text)
        panels[k] = max(panels[k], text.get_window_extent(renderer).width / fig.dpi + 0.1)
    gap = 0.35
    width = sum(panels) + gap * (len(sizes) - 1) + 2 * _MARGIN
    body_h = max(h for _, h in sizes)
    items = _legend_items(diagrams) if legend else []
    legend_h, legend_w = _draw_legend(ax, items, width, renderer) if items else (0.0, 0.0)
    width = max(width, legend_w)
    if width > max_width:
        plt.close(fig)
        raise ValueError(f"the diagrams are {width:.1f} inches wide, more than max_width "
                         f"{max_width:g}: the page would shrink their text below {SMALL_PT} pt; "
                         "draw them with direction='down' or split them")
    height = legend_h + body_h + title_h + _MARGIN
    # whole pixels at 100 dpi, so the figure's printed size is a plain "<Figure size WxH>"
    extra_w, extra_h = math.ceil(width * 100) / 100 - width, math.ceil(height * 100) / 100 - height
    width, legend_h, height = width + extra_w, legend_h + extra_h, height + extra_h
    fig.set_size_inches(width, height)
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    x = _MARGIN
    for k, (d, (w, h)) in enumerate(zip(diagrams, sizes)):
        origin = (x + (panels[k] - w) / 2, legend_h + (body_h - h))  # aligned at the top
        _render(d, ax, origin, (w, h))
        if titles:
            title_texts[k].set_position((x + panels[k] / 2, legend_h + body_h + title_h / 2))
        x += panels[k] + gap
    try:
        _check(fig, diagrams)
    except ValueError:
        plt.close(fig)
        raise
    return fig


# -- free layout: nodes where you put them, arrows in any direction -------------------------

@dataclass(frozen=True)
class _Style:
    face: str  # the fill
    edge: str  # the border's colour
    linestyle: str | tuple  # the border's style: one per kind, so colour is never the only cue
    lw: float


# The kinds of node a :class:`Sketch` draws (recurrent networks: inputs, states, gates, ...).
SKETCH_KINDS: dict[str, _Style] = {
    "input": _Style("white", "#555555", "-", 1.1),
    "state": _Style("#DCEBF7", PALETTE[0], "-", 2.0),
    "reverse": _Style("#FBE3D0", PALETTE[1], "--", 1.6),
    "output": _Style("white", "#222222", "-.", 1.4),
    "gate": _Style("#D9F0E8", PALETTE[2], (0, (5, 1.5, 1, 1.5, 1, 1.5)), 1.4),
    "function": _Style("white", "#222222", ":", 1.4),
}
# An arrow's style: its line style, and its colour unless the call gives one.
ARROW_STYLES: dict[str, tuple[str | tuple, str]] = {
    "solid": ("-", "#222222"), "dashed": ("--", PALETTE[1]), "dotted": (":", PALETTE[1]),
}
_OPS = ("product", "sum")  # ⊙ (element-wise product) and ⊕ (sum)
_OP_RADIUS = 0.16


class Sketch:
    """A free-layout drawing in inches: nodes at given centres, arrows between any two of them.

    For pictures that do not flow one way: a recurrence looping back into its cell, a state
    passed backward in time, the LSTM's element-wise products. ``Sketch(width, height)`` is a
    canvas of that many inches (at most ``max_width``, the text column); ``(0, 0)`` is its
    lower-left corner. Example, a folded RNN::

        s = Sketch(2.4, 2.2)
        s.node("x", 0.6, 0.4, "$x_t$", kind="input")
        s.node("h", 0.6, 1.1, "$h_t$", kind="state")
        s.node("o", 0.6, 1.8, "$o_t$", kind="output")
        s.arrow("x", "h", label="$W_{ih}$", label_offset=(-0.32, 0))
        s.arrow("h", "o")
        s.loop("h", label="$W_{hh}$")
        fig = s.draw()

    - ``node(name, x, y, text, *, kind, width=0.8, height=0.4)``: a rounded box centred at
      ``(x, y)``; ``kind`` is a key of :data:`SKETCH_KINDS` (each kind has its own border style).
    - ``op(name, x, y, op)``: a small circle, ``"product"`` (⊙, element-wise) or ``"sum"`` (⊕).
    - ``arrow(src, dst, *, label=None, style="solid", colour=None, bend=0.0,
      label_offset=(0, 0.12))``: ``src`` and ``dst`` are node names or ``(x, y)`` points; the
      arrow stops at the nodes' borders; ``style`` is a key of :data:`ARROW_STYLES`; ``bend``
      curves it (``matplotlib``'s ``arc3`` radius: positive bends to the left of its way);
      the label sits at the middle of the straight line plus ``label_offset`` inches.
    - ``loop(name, *, label=None, side="right")``: a recurrence, an arrow leaving ``name`` on
      that side and coming back into it.
    - ``text(x, y, s, *, ha="left", bold=False, colour="#000000")``: a free text (row names, a
      title), 9 pt (10 pt bold).
    - ``draw() -> Figure``: the figure at one data unit per inch; raises ``ValueError`` if two
      nodes overlap, two texts overlap, a node's text leaves it, a text leaves the figure or a
      straight arrow crosses a node it does not connect. Artists carry gids ``node:<name>``,
      ``op:<name>``, ``arrow:<src>-><dst>`` (a point is written ``x,y``), ``loop:<name>``,
      ``text:<k>``, ``label:<name>``, ``arrowlabel:<src>-><dst>``.
    """

    def __init__(self, width: float, height: float, *, max_width: float = MAX_WIDTH) -> None:
        width, height = _finite_pair((width, height), "width, height")
        if width <= 0 or height <= 0:
            raise ValueError(f"width, height: expected positive inches, got {width:g}, {height:g}")
        if width > max_width:
            raise ValueError(f"width: {width:g} inches is more than max_width {max_width:g}: the "
                             f"page would shrink the text below {SMALL_PT} pt")
        self.width, self.height = width, height
        self.nodes: dict[str, tuple] = {}  # name -> (x, y, half width, half height, text, kind)
        self.arrows: list[tuple] = []  # (src, dst, label, style, colour, bend, label_offset)
        self.loops: list[tuple] = []  # (name, label, side)
        self.texts: list[tuple] = []  # (x, y, s, ha, bold, colour)

    def _new(self, name: str, x, y) -> tuple[float, float]:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        if name in self.nodes:
            raise ValueError(f"name: a node called {name!r} exists already")
        x, y = _finite_pair((x, y), f"x, y (node {name!r})")
        if not (0 <= x <= self.width and 0 <= y <= self.height):
            raise ValueError(f"x, y (node {name!r}): ({x:g}, {y:g}) is outside the "
                             f"{self.width:g} × {self.height:g} inch canvas")
        return x, y

    def node(self, name: str, x: float, y: float, text: str, *, kind: str,
             width: float = 0.8, height: float = 0.4) -> str:
        """A box of ``kind`` centred at ``(x, y)``; returns its name."""
        x, y = self._new(name, x, y)
        if kind not in SKETCH_KINDS:
            raise ValueError(f"kind: expected one of {sorted(SKETCH_KINDS)}, got {kind!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text: expected a non-empty string for node {name!r}, got {text!r}")
        width, height = _finite_pair((width, height), f"width, height (node {name!r})")
        if width <= 0 or height <= 0:
            raise ValueError(f"width, height (node {name!r}): expected positive inches, got "
                             f"{width:g}, {height:g}")
        self.nodes[name] = (x, y, width / 2, height / 2, text, kind)
        return name

    def op(self, name: str, x: float, y: float, op: str) -> str:
        """An operation node: ``"product"`` (⊙, element-wise) or ``"sum"`` (⊕)."""
        x, y = self._new(name, x, y)
        if op not in _OPS:
            raise ValueError(f"op: expected one of {_OPS}, got {op!r}")
        self.nodes[name] = (x, y, _OP_RADIUS, _OP_RADIUS, None, op)
        return name

    def _end(self, end, what: str):
        if isinstance(end, str):
            if end not in self.nodes:
                raise ValueError(f"{what}: unknown node {end!r}; nodes are {list(self.nodes)}")
            return end
        return _finite_pair(end, what)

    def arrow(self, src, dst, *, label: str | None = None, style: str = "solid",
              colour: str | None = None, bend: float = 0.0, label_offset=(0.0, 0.12)) -> None:
        """An arrow from ``src`` to ``dst`` (node names or ``(x, y)`` points)."""
        src, dst = self._end(src, "src"), self._end(dst, "dst")
        if src == dst:
            raise ValueError(f"arrow: from {src!r} to itself; use loop() for a recurrence")
        if style not in ARROW_STYLES:
            raise ValueError(f"style: expected one of {sorted(ARROW_STYLES)}, got {style!r}")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise ValueError(f"label: expected None or a non-empty string, got {label!r}")
        bend = float(bend)
        if not math.isfinite(bend):
            raise ValueError(f"bend: expected a finite number, got {bend!r}")
        offset = _finite_pair(label_offset, "label_offset")
        self.arrows.append((src, dst, label, style, colour, bend, offset))

    def loop(self, name: str, *, label: str | None = None, side: str = "right") -> None:
        """A recurrence: an arrow out of ``name``'s side and back into it."""
        self._end(name, "name")
        if side not in ("right", "left"):
            raise ValueError(f"side: expected 'right' or 'left', got {side!r}")
        if label is not None and (not isinstance(label, str) or not label.strip()):
            raise ValueError(f"label: expected None or a non-empty string, got {label!r}")
        self.loops.append((name, label, side))

    def text(self, x: float, y: float, s: str, *, ha: str = "left", bold: bool = False,
             colour: str = "#000000") -> None:
        """A free text at ``(x, y)``, vertically centred there."""
        x, y = _finite_pair((x, y), "x, y")
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"s: expected a non-empty string, got {s!r}")
        if ha not in ("left", "center", "right"):
            raise ValueError(f"ha: expected 'left', 'center' or 'right', got {ha!r}")
        self.texts.append((x, y, s, ha, bool(bold), colour))

    @staticmethod
    def _gid(end) -> str:
        return end if isinstance(end, str) else f"{end[0]:g},{end[1]:g}"

    def draw(self):
        """The figure; raises ``ValueError`` if the drawing is not legible (class docstring)."""
        use_style()
        fig = plt.figure(figsize=(self.width, self.height))
        fig.set_layout_engine("none")
        ax = fig.add_axes((0, 0, 1, 1))
        ax.axis("off")
        ax.set(xlim=(0, self.width), ylim=(0, self.height))
        patches, owned = {}, []  # node name -> patch; (text, owner's name)
        for name, (x, y, hw, hh, text, kind) in self.nodes.items():
            if kind in _OPS:
                patch = Circle((x, y), _OP_RADIUS, facecolor="white", edgecolor="#000000",
                               lw=1.4, zorder=3, gid=f"op:{name}")
                ax.add_patch(patch)
                arm = _OP_RADIUS * 0.6
                if kind == "sum":  # ⊕: a plus in the circle
                    for xs, ys in (([x - arm, x + arm], [y, y]), ([x, x], [y - arm, y + arm])):
                        ax.plot(xs, ys, color="#000000", lw=1.4, linestyle="-", zorder=4)
                else:  # ⊙: a dot in the circle
                    ax.add_patch(Circle((x, y), _OP_RADIUS * 0.22, facecolor="#000000",
                                        lw=0, zorder=4))
            else:
                st = SKETCH_KINDS[kind]
                patch = FancyBboxPatch((x - hw, y - hh), 2 * hw, 2 * hh,
                                       boxstyle="round,pad=0,rounding_size=0.07", fc=st.face,
                                       ec=st.edge, ls=st.linestyle, lw=st.lw, zorder=3,
                                       gid=f"node:{name}")
                ax.add_patch(patch)
                owned.append((ax.text(x, y, text, ha="center", va="center", fontsize=LABEL_PT,
                                      zorder=4, gid=f"label:{name}"), name))
            patches[name] = patch
        for src, dst, label, style, colour, bend, (dx, dy) in self.arrows:
            linestyle, default = ARROW_STYLES[style]
            colour = colour or default
            a, b = (self.nodes[e][:2] if isinstance(e, str) else e for e in (src, dst))
            ax.add_patch(FancyArrowPatch(
                a, b, patchA=patches.get(src) if isinstance(src, str) else None,
                patchB=patches.get(dst) if isinstance(dst, str) else None,
                arrowstyle="-|>", mutation_scale=12, lw=1.3, ls=linestyle, color=colour,
                connectionstyle=f"arc3,rad={bend}", shrinkA=1, shrinkB=1, zorder=2,
                gid=f"arrow:{self._gid(src)}->{self._gid(dst)}"))
            if label:
                ax.text((a[0] + b[0]) / 2 + dx, (a[1] + b[1]) / 2 + dy, label,
                        fontsize=SMALL_PT, ha="center", va="center", color=colour, zorder=4,
                        gid=f"arrowlabel:{self._gid(src)}->{self._gid(dst)}",
                        bbox={"boxstyle": "square,pad=0.05", "fc": "white", "ec": "none"})
        for name, label, side in self.loops:
            x, y, hw, hh = self.nodes[name][:4]
            sign = 1 if side == "right" else -1
            edge = x + sign * hw
            ax.add_patch(FancyArrowPatch(
                (edge, y + 0.5 * hh), (edge, y - 0.5 * hh), arrowstyle="-|>",
                mutation_scale=12, lw=1.3, color="#222222", zorder=2, gid=f"loop:{name}",
                connectionstyle=f"arc,angleA={0 if sign > 0 else 180},"
                                f"angleB={0 if sign > 0 else 180},armA=18,armB=18,rad=6"))
            if label:
                ax.text(edge + sign * 0.34, y, label, fontsize=SMALL_PT, va="center",
                        ha="left" if sign > 0 else "right", zorder=4, gid=f"looplabel:{name}")
        for k, (x, y, s, ha, bold, colour) in enumerate(self.texts):
            ax.text(x, y, s, ha=ha, va="center", fontsize=LABEL_PT if bold else SMALL_PT,
                    fontweight="bold" if bold else "normal", color=colour, zorder=4,
                    gid=f"text:{k}")
        try:
            self._check(fig, ax, patches, owned)
        except ValueError:
            plt.close(fig)
            raise
        return fig

    def _check(self, fig, ax, patches, owned) -> None:
        renderer = fig.canvas.get_renderer()
        texts = [(t.get_gid(), t.get_window_extent(renderer)) for t in ax.texts]
        boxes = {name: p.get_window_extent(renderer) for name, p in patches.items()}
        _check_overlaps(texts, boxes, "texts overlap: {!r} and {!r}")
        for text, name in owned:
            if not _inside(text.get_window_extent(renderer), boxes[name]):
                raise ValueError(f"the text of node {name!r} leaves it: make the node larger")
        _check_in_figure(fig, texts)
        for src, dst, _, _, _, bend, _ in self.arrows:
            if bend:
                continue  # a curved arrow is the drawer's to place
            a, b = (ax.transData.transform(self.nodes[e][:2] if isinstance(e, str) else e)
                    for e in (src, dst))
            for name, box in boxes.items():
                if name in (src, dst):
                    continue
                for s in np.linspace(0, 1, 201):
                    px, py = a + s * (b - a)
                    if box.x0 + 1 < px < box.x1 - 1 and box.y0 + 1 < py < box.y1 - 1:
                        raise ValueError(f"arrow {self._gid(src)!r} -> {self._gid(dst)!r} "
                                         f"crosses node {name!r}")
