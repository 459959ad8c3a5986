"""dlbook.diagrams: block diagrams are built as specified, legible, and bad specs are refused."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from dlbook.diagrams import (
    ARROW_STYLES,
    KINDS,
    MAX_WIDTH,
    SKETCH_KINDS,
    Diagram,
    Sketch,
    describe_layer,
    draw_diagrams,
    format_shape,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def residual_block() -> Diagram:
    d = Diagram("down")
    d.box("x", "input", kind="input", shape="56×56×64")
    d.box("c1", "conv 3×3, 64", kind="conv", shape="56×56×64")
    d.box("bn", "batch norm, ReLU", kind="norm")
    d.box("c2", "conv 3×3, 64", kind="conv")
    d.add("sum")
    d.box("out", "ReLU", kind="activation", shape="56×56×64")
    d.chain("x", "c1", "bn", "c2", "sum", "out")
    d.arrow("x", "sum", via=1, label="identity")
    return d


def inception() -> Diagram:
    d = Diagram("down")
    d.box("in", "previous layer", kind="input", shape="28×28×192", at=(0, 1.5))
    for lane, (name, label, kind) in enumerate([("a", "conv 1×1, 64", "conv"),
                                                 ("b", "conv 1×1, 96", "conv"),
                                                 ("c", "conv 1×1, 16", "conv"),
                                                 ("p", "max pool 3×3", "pool")]):
        d.box(name, label, kind=kind, at=(1, lane))
        d.arrow("in", name)
    d.box("b2", "conv 3×3, 128", kind="conv", at=(2, 1))
    d.box("c2", "conv 5×5, 32", kind="conv", at=(2, 2))
    d.box("p2", "conv 1×1, 32", kind="conv", at=(2, 3))
    d.concat("cat", "concatenate", shape="28×28×256", at=(3, 1.5), span=(0, 3))
    d.chain("b", "b2")
    d.chain("c", "c2")
    d.chain("p", "p2")
    for name in ("a", "b2", "c2", "p2"):
        d.arrow(name, "cat")
    return d


def gids(fig, prefix: str) -> list[str]:
    ax = fig.axes[0]
    return sorted(a.get_gid() for a in list(ax.patches) + list(ax.texts)
                  if (a.get_gid() or "").startswith(prefix))


def test_residual_block_artists_counted_from_the_tree():
    fig = residual_block().draw(title="basic block")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)
             and p.get_gid().startswith("box:")]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    adds = [p for p in ax.patches if isinstance(p, Circle) and p.get_gid().startswith("add:")]
    assert len(boxes) == 5 and len(arrows) == 6 and len(adds) == 1
    assert gids(fig, "arrow:") == sorted(["arrow:x->c1", "arrow:c1->bn", "arrow:bn->c2",
                                          "arrow:c2->sum", "arrow:sum->out", "arrow:x->sum"])
    texts = {t.get_text() for t in ax.texts}
    assert {"conv 3×3, 64", "56×56×64", "identity", "basic block", "convolution"} <= texts
    # every text at least 9 pt; the figure at one data unit per inch
    assert min(t.get_fontsize() for t in ax.texts) >= 9
    width, height = fig.get_size_inches()
    assert ax.get_xlim() == (0, width) and ax.get_ylim() == (0, height) and width <= MAX_WIDTH


def test_shortcut_goes_around_in_its_lane():
    fig = residual_block().draw()
    ax = fig.axes[0]
    arrows = {p.get_gid(): np.array(p.route_points) for p in ax.patches
              if (p.get_gid() or "").startswith("arrow:")}
    shortcut, main = arrows["arrow:x->sum"], arrows["arrow:x->c1"]
    assert len(shortcut) == 4 and len(main) == 2
    assert shortcut[1:3, 0].min() > main[:, 0].max()  # the side lane, right of the main line
    assert shortcut[0, 1] > shortcut[-1, 1]  # from the input down to the addition


def test_kinds_differ_by_pattern_or_border_not_colour_alone():
    styles = {(k.hatch, str(k.linestyle)) for name, k in KINDS.items() if name != "output"}
    assert len(styles) == len(KINDS) - 1  # output shares input's style, every other kind differs
    fig = inception().draw()
    strips = {p.get_gid(): p.get_hatch() for p in fig.axes[0].patches
              if (p.get_gid() or "").startswith("strip:")}
    assert strips["strip:a"] == KINDS["conv"].hatch and strips["strip:p"] == KINDS["pool"].hatch
    legend = {t.get_text() for t in fig.axes[0].texts if (t.get_gid() or "").startswith("legend:")}
    assert legend == {"input / output", "convolution", "pooling", "concatenation"}


def test_inception_branches_and_spanning_concat():
    fig = inception().draw()
    ax = fig.axes[0]
    assert len(gids(fig, "box:")) == 9 and len(gids(fig, "arrow:")) == 11
    boxes = {p.get_gid(): p.get_window_extent() for p in ax.patches
             if (p.get_gid() or "").startswith("box:")}
    cat = boxes["box:cat"]
    for branch in ("a", "b2", "c2", "p2"):  # the concatenation spans all four branches
        assert cat.x0 <= boxes[f"box:{branch}"].x0 and boxes[f"box:{branch}"].x1 <= cat.x1
    # the four arrows into the concatenation come straight down
    for branch in ("a", "b2", "c2", "p2"):
        points = next(np.array(p.route_points) for p in ax.patches
                      if p.get_gid() == f"arrow:{branch}->cat")
        assert len(points) == 2 and points[0, 0] == points[1, 0]


def test_horizontal_layout_and_panels():
    d = Diagram("right")
    d.box("x", "input", kind="input", shape="32×32×1")
    d.box("c", "conv 5×5", kind="conv", shape="28×28×6")
    d.box("p", "pool", kind="pool")
    d.box("f", "fully\nconnected", kind="fc")
    d.chain("x", "c", "p", "f")
    fig = d.draw(legend=False)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if (p.get_gid() or "").startswith("box:")]
    xs = [b.get_x() for b in boxes]
    ys = [b.get_y() + b.get_height() / 2 for b in boxes]
    assert xs == sorted(xs) and np.allclose(ys, ys[0])  # left to right, at one height
    assert not gids(fig, "legend:")
    both = draw_diagrams([residual_block(), inception()], titles=["a", "b"], max_width=12)
    assert gids(both, "title:") == ["title:0", "title:1"]
    assert "box:0.c1" in gids(both, "box:") and "box:1.cat" in gids(both, "box:")
    assert "arrow:0.x->0.sum" in gids(both, "arrow:")


def test_format_shape():
    assert format_shape((1, 6, 28, 28)) == "28×28×6"
    assert format_shape((6, 28, 28), order="CHW") == "6×28×28"
    assert format_shape((1, 84)) == "84" and format_shape((10,)) == "10"
    with pytest.raises(ValueError, match="order"):
        format_shape((1, 6, 28, 28), order="WHC")
    with pytest.raises(ValueError, match="shape"):
        format_shape((1, 2, 3, 4, 5))
    with pytest.raises(ValueError, match="shape"):
        format_shape((1, 0, 28, 28))


def test_bad_specs_raise():
    with pytest.raises(ValueError, match="direction"):
        Diagram("up")
    d = Diagram()
    d.box("a", "input", kind="input")
    with pytest.raises(ValueError, match="kind"):
        d.box("b", "conv", kind="convolution")
    with pytest.raises(ValueError, match="exists already"):
        d.box("a", "again", kind="conv")
    with pytest.raises(ValueError, match="label"):
        d.box("b", "  ", kind="conv")
    with pytest.raises(ValueError, match="shape"):
        d.box("b", "conv", kind="conv", shape="")
    with pytest.raises(ValueError, match="would sit on node 'a'"):
        d.box("b", "conv", kind="conv", at=(0, 0))
    with pytest.raises(ValueError, match="pair of numbers"):
        d.box("b", "conv", kind="conv", at=(1,))
    with pytest.raises(ValueError, match="finite"):
        d.box("b", "conv", kind="conv", at=(float("nan"), 0))
    with pytest.raises(ValueError, match="lo <= lane <= hi"):
        d.concat("b", at=(1, 0), span=(1, 3))
    d.box("b", "conv", kind="conv")
    with pytest.raises(ValueError, match="unknown node 'z'"):
        d.arrow("a", "z")
    with pytest.raises(ValueError, match="to itself"):
        d.arrow("a", "a")
    with pytest.raises(ValueError, match="later step"):
        d.arrow("b", "a")
    with pytest.raises(ValueError, match="route"):
        d.arrow("a", "b", route="diagonal")
    with pytest.raises(ValueError, match="via: lane 0"):
        d.arrow("a", "b", via=0)
    with pytest.raises(ValueError, match="route='auto' only"):
        d.arrow("a", "b", via=1, route="along_first")
    with pytest.raises(ValueError, match="at least two"):
        d.chain("a")
    d.arrow("a", "b")
    with pytest.raises(ValueError, match="exists already"):
        d.arrow("a", "b")
    with pytest.raises(ValueError, match="at least one Diagram"):
        draw_diagrams([])
    with pytest.raises(ValueError, match="no nodes"):
        draw_diagrams([Diagram()])
    with pytest.raises(TypeError, match="expected a Diagram"):
        draw_diagrams(["a"])
    with pytest.raises(ValueError, match="titles: expected 1"):
        draw_diagrams([d], titles=["a", "b"])


def test_legibility_checks_can_fail():
    """Each check of the finished drawing raises on a diagram that breaks it."""
    d = Diagram("down")
    d.box("a", "input", kind="input")
    d.box("b", "a long label for a box", kind="conv", at=(2, 0))
    d.box("c", "conv", kind="conv", at=(1, 0))
    d.arrow("a", "b")
    with pytest.raises(ValueError, match="arrow 'a' -> 'b' crosses node 'box:c'"):
        d.draw()
    d = Diagram("down")
    d.box("a", "input", kind="input")
    d.box("b", "conv", kind="conv")
    d.arrow("a", "b", label="an arrow label\nthree lines tall\nruns into the box")
    with pytest.raises(ValueError, match="labels overlap: 'label:a' and 'arrowlabel:a->b'"):
        d.draw()
    d = Diagram("down")
    d.box("a", "input", kind="input")
    d.box("b", "conv", kind="conv")
    d.arrow("a", "b", label="a one-line arrow label longer than the figure is wide")
    with pytest.raises(ValueError, match="text 'arrowlabel:a->b' leaves the figure"):
        d.draw(legend=False)
    d = Diagram("down")
    d.add("s1")
    d.add("s2")
    d.arrow("s1", "s2", label="an arrow label\nthree lines tall\nruns into the node")
    with pytest.raises(ValueError, match="text 'arrowlabel:s1->s2' overlaps node 'add:s"):
        d.draw()
    d = Diagram("down")
    d.box("a", "input", kind="input", at=(0, 1))
    d.concat("cat", at=(1, 0), span=(0, 2))
    d.box("b", "conv", kind="conv", at=(1, 2))
    with pytest.raises(ValueError, match="nodes overlap: 'box:cat' and 'box:b'"):
        d.draw()
    wide = Diagram("right")
    names = [wide.box(f"n{k}", f"layer number {k}", kind="conv") for k in range(8)]
    wide.chain(*names)
    plt.close("all")
    with pytest.raises(ValueError, match="more than max_width 6.5"):
        wide.draw()
    assert not plt.get_fignums()  # a refused figure is closed, not left open
    assert draw_diagrams([wide], max_width=40).get_size_inches()[0] > MAX_WIDTH


def test_a_legible_diagram_passes_the_same_checks():
    """Positive twin of the negative cases: the same shapes, spaced, draw without error."""
    d = Diagram("down")
    d.box("a", "input", kind="input")
    d.box("c", "conv", kind="conv")
    d.box("b", "a long label for a box", kind="conv")
    d.chain("a", "c", "b")
    fig = d.draw()
    assert len(gids(fig, "box:")) == 3


def test_describe_layer_reads_torch_layers():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    cases = [
        (nn.Conv2d(3, 96, 11, stride=4), ("conv 11×11, 96, stride 4", "conv")),
        (nn.Conv2d(96, 256, 5, padding=2, groups=2), ("conv 5×5, 256, 2 groups", "conv")),
        (nn.Conv2d(4, 8, (1, 3)), ("conv 1×3, 8", "conv")),
        (nn.MaxPool2d(2), ("max pool 2×2", "pool")),
        (nn.MaxPool2d(3, stride=2), ("max pool 3×3, stride 2", "pool")),
        (nn.MaxPool2d(3, stride=1, padding=1), ("max pool 3×3, stride 1", "pool")),
        (nn.AvgPool2d(3, stride=2), ("average pool 3×3, stride 2", "pool")),
        (nn.AdaptiveAvgPool2d(1), ("global average pool", "pool")),
        (nn.Linear(9216, 4096), ("fully connected, 4096", "fc")),
        (nn.ReLU(), ("ReLU", "activation")),
        (nn.BatchNorm2d(64), ("batch norm", "norm")),
        (nn.LocalResponseNorm(5), ("LRN, size 5", "norm")),
        (nn.Dropout(0.5), ("dropout 0.5", "dropout")),
    ]
    for module, expected in cases:
        assert describe_layer(module) == expected
        assert expected[1] in KINDS
    with pytest.raises(ValueError, match="got Flatten; label it by hand"):
        describe_layer(nn.Flatten())
    with pytest.raises(ValueError, match="got AdaptiveAvgPool2d"):
        describe_layer(nn.AdaptiveAvgPool2d(2))


# -- Sketch: free layout ------------------------------------------------------------------

def lstm_sketch() -> Sketch:
    """A cut-down LSTM step: products, a sum, a gradient arrow back in time, a loop."""
    s = Sketch(4.0, 2.6)
    s.node("c_prev", 0.45, 2.0, "$c_{t-1}$", kind="state", width=0.6)
    s.node("f", 1.3, 0.8, "forget gate", kind="gate", width=1.0)
    s.op("keep", 1.3, 2.0, "product")
    s.op("sum", 2.3, 2.0, "sum")
    s.node("c", 3.4, 2.0, "$c_t$", kind="state", width=0.6)
    s.node("x", 3.4, 0.8, "$x_t$", kind="input", width=0.6)
    s.arrow("c_prev", "keep")
    s.arrow("f", "keep")
    s.arrow("keep", "sum")
    s.arrow("sum", "c")
    s.arrow("x", "c", label="$W$", label_offset=(0.25, 0))
    s.arrow("c", "c_prev", style="dashed", bend=0.25)  # backward in time, curved over the top
    s.arrow((0.2, 0.3), (0.8, 0.3), label="unroll", label_offset=(0, 0.15))
    s.loop("x", label="later", side="left")
    s.text(0.1, 2.45, "an LSTM step, cut down", bold=True)
    return s


def test_sketch_artists_counted_from_the_tree():
    fig = lstm_sketch().draw()
    ax = fig.axes[0]
    assert tuple(fig.get_size_inches()) == (4.0, 2.6)
    assert ax.get_xlim() == (0, 4.0) and ax.get_ylim() == (0, 2.6)  # one data unit per inch
    assert gids(fig, "node:") == ["node:c", "node:c_prev", "node:f", "node:x"]
    assert gids(fig, "op:") == ["op:keep", "op:sum"]
    assert gids(fig, "arrow:") == sorted(["arrow:c_prev->keep", "arrow:f->keep",
                                          "arrow:keep->sum", "arrow:sum->c", "arrow:x->c",
                                          "arrow:c->c_prev", "arrow:0.2,0.3->0.8,0.3"])
    assert gids(fig, "loop:") == ["loop:x"]
    # ⊙ is a circle with a dot (an extra small circle), ⊕ a circle with a plus (two lines)
    dots = [p for p in ax.patches if isinstance(p, Circle) and p.get_gid() is None]
    assert len(dots) == 1 and dots[0].center == (1.3, 2.0)
    assert len(ax.lines) == 2
    texts = {t.get_text() for t in ax.texts}
    assert {"forget gate", "$W$", "unroll", "later", "an LSTM step, cut down"} <= texts
    assert min(t.get_fontsize() for t in ax.texts) >= 9


def test_sketch_arrows_run_any_way_and_loop_out_of_the_side():
    fig = lstm_sketch().draw()
    ax = fig.axes[0]
    fig.canvas.draw()
    patches = {p.get_gid(): p for p in ax.patches if p.get_gid()}

    def ends(gid):
        """The path's points in inches (without the closing vertex), its start and its tip."""
        verts = patches[gid].get_path().vertices[:-1]
        return verts, verts[0], verts[-2]

    verts, start, tip = ends("arrow:c->c_prev")  # from c_t back to c_{t-1}: right to left
    assert start[0] > 3.0 and tip[0] < 0.8
    assert verts[:, 1].max() > 2.25  # bent: it rises above the row instead of crossing the ops
    assert patches["arrow:c->c_prev"].get_linestyle() == "--"
    assert patches["arrow:keep->sum"].get_linestyle() == "-"
    verts, start, tip = ends("loop:x")  # out of x's left side (at 3.1) and back into it
    assert verts[:, 0].min() < 3.1 - 0.15 and verts[:, 0].max() <= 3.1 + 0.02
    assert start[1] > 0.8 > tip[1]
    verts, start, tip = ends("arrow:0.2,0.3->0.8,0.3")  # an arrow between two points
    assert np.allclose([start[1], tip[1]], 0.3, atol=0.02) and tip[0] > start[0]


def test_sketch_kinds_and_arrows_differ_by_line_style_not_colour_alone():
    assert len({(str(k.linestyle), k.lw) for k in SKETCH_KINDS.values()}) == len(SKETCH_KINDS)
    assert len({str(style) for style, _ in ARROW_STYLES.values()}) == len(ARROW_STYLES)
    fig = lstm_sketch().draw()
    boxes = {p.get_gid(): p for p in fig.axes[0].patches if (p.get_gid() or "")
             .startswith("node:")}
    assert boxes["node:f"].get_linestyle() != boxes["node:x"].get_linestyle() \
        or boxes["node:f"].get_linewidth() != boxes["node:x"].get_linewidth()


@pytest.mark.parametrize("build", [residual_block, lstm_sketch])
def test_deterministic(build):
    a, b = build().draw(), build().draw()
    a.canvas.draw()
    b.canvas.draw()
    assert np.array_equal(np.asarray(a.canvas.buffer_rgba()), np.asarray(b.canvas.buffer_rgba()))


def test_sketch_bad_input_raises():
    with pytest.raises(ValueError, match="more than max_width 6.5"):
        Sketch(7.0, 2.0)
    with pytest.raises(ValueError, match="positive"):
        Sketch(3.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        Sketch(float("inf"), 2.0)
    s = Sketch(3.0, 2.0)
    s.node("a", 0.5, 0.5, "a", kind="input")
    with pytest.raises(ValueError, match="exists already"):
        s.node("a", 1.5, 0.5, "b", kind="input")
    with pytest.raises(ValueError, match="kind"):
        s.node("b", 1.5, 0.5, "b", kind="hidden")
    with pytest.raises(ValueError, match="text"):
        s.node("b", 1.5, 0.5, " ", kind="state")
    with pytest.raises(ValueError, match="outside the 3 × 2 inch canvas"):
        s.node("b", 3.5, 0.5, "b", kind="state")
    with pytest.raises(ValueError, match="positive inches"):
        s.node("b", 1.5, 0.5, "b", kind="state", width=0)
    with pytest.raises(ValueError, match="op: expected one of"):
        s.op("b", 1.5, 0.5, "quotient")
    with pytest.raises(ValueError, match="unknown node 'z'"):
        s.arrow("a", "z")
    with pytest.raises(ValueError, match="use loop"):
        s.arrow("a", "a")
    with pytest.raises(ValueError, match="style"):
        s.arrow("a", (2.0, 1.0), style="wavy")
    with pytest.raises(ValueError, match="bend"):
        s.arrow("a", (2.0, 1.0), bend=float("nan"))
    with pytest.raises(ValueError, match="label"):
        s.arrow("a", (2.0, 1.0), label="")
    with pytest.raises(ValueError, match="pair of numbers"):
        s.arrow("a", (2.0,))
    with pytest.raises(ValueError, match="side"):
        s.loop("a", side="top")
    with pytest.raises(ValueError, match="unknown node 'z'"):
        s.loop("z")
    with pytest.raises(ValueError, match="ha"):
        s.text(1.0, 1.0, "t", ha="middle")


def test_sketch_legibility_checks_can_fail():
    """Each check of the finished drawing raises on a sketch that breaks it; closed after."""
    plt.close("all")
    s = Sketch(3.0, 2.0)
    s.node("a", 1.0, 1.0, "a", kind="input")
    s.node("b", 1.5, 1.0, "b", kind="state")
    with pytest.raises(ValueError, match="nodes overlap: 'a' and 'b'"):
        s.draw()
    s = Sketch(3.0, 2.0)
    s.node("a", 1.0, 1.0, "a label far wider than its box", kind="input")
    with pytest.raises(ValueError, match="the text of node 'a' leaves it"):
        s.draw()
    s = Sketch(3.0, 2.0)
    s.text(0.1, 1.0, "a row name")
    s.text(0.3, 1.0, "another row name")
    with pytest.raises(ValueError, match="texts overlap: 'text:0' and 'text:1'"):
        s.draw()
    s = Sketch(3.0, 2.0)
    s.text(2.5, 1.0, "runs off the right edge")
    with pytest.raises(ValueError, match="text 'text:0' leaves the figure"):
        s.draw()
    s = Sketch(3.0, 2.0)
    for name, x in (("a", 0.5), ("b", 1.5), ("c", 2.5)):
        s.node(name, x, 1.0, name, kind="state", width=0.6)
    s.arrow("a", "c")
    with pytest.raises(ValueError, match="arrow 'a' -> 'c' crosses node 'b'"):
        s.draw()
    assert not plt.get_fignums()  # a refused figure is closed, not left open


def test_sketch_legible_twins_pass_the_same_checks():
    """The negative cases, made legible: spaced, wide enough, the arrow bent around b."""
    s = Sketch(3.0, 2.0)
    for name, x in (("a", 0.5), ("b", 1.5), ("c", 2.5)):
        s.node(name, x, 1.0, name, kind="state", width=0.6)
    s.arrow("a", "c", bend=-0.5)
    s.text(0.1, 0.3, "a row name")
    s.text(1.6, 0.3, "another")
    fig = s.draw()
    assert len(gids(fig, "node:")) == 3
