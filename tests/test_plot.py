"""dlbook.plot: the helpers draw what they are given and reject bad input with a clear message."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dlbook.plot import plot_graph, plot_trajectories  # noqa: E402

NODES = {"x": "x\n0.7", "b": "b\n3", "u": "u = b x\n2.1", "a": "a\n2", "t": "t = a + u\n4.1", "F": "F = t^2\n16.81"}
EDGES = [("b", "u"), ("x", "u"), ("u", "t"), ("a", "t"), ("t", "F")]


def test_plot_graph_draws_boxes_arrows_and_gradients():
    ax = plot_graph(NODES, EDGES, grads={"F": "1", "t": "8.2", "x": "24.6"}, edge_labels={("t", "F"): "2t"})
    texts = [t.get_text() for t in ax.texts]
    for label in NODES.values():
        assert label in texts
    assert "24.6" in texts and "2t" in texts
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == len(EDGES)
    # Layered layout: inputs in the first column, F alone in the last.
    positions = {t.get_text(): t.get_position() for t in ax.texts}
    assert positions[NODES["x"]][0] == positions[NODES["a"]][0] == 0.0
    assert positions[NODES["F"]][0] > positions[NODES["t"]][0] > positions[NODES["u"]][0]
    plt.close("all")


def test_plot_graph_bad_input():
    with pytest.raises(ValueError, match="nodes: expected at least one node"):
        plot_graph({}, [])
    with pytest.raises(ValueError, match=r"edges\[1\]: unknown node 'y'"):
        plot_graph({"x": "x", "z": "z"}, [("x", "z"), ("y", "z")])
    with pytest.raises(ValueError, match=r"edges\[0\]: self-loop on 'x'"):
        plot_graph({"x": "x"}, [("x", "x")])
    with pytest.raises(ValueError, match="cycle"):
        plot_graph({"x": "x", "y": "y"}, [("x", "y"), ("y", "x")])
    with pytest.raises(ValueError, match=r"edges\[0\]: expected a \(src, dst\) pair"):
        plot_graph({"x": "x"}, [("x",)])
    with pytest.raises(ValueError, match="grads: unknown node 'q'"):
        plot_graph({"x": "x"}, [], grads={"q": "1"})
    with pytest.raises(ValueError, match="edge_labels"):
        plot_graph({"x": "x", "y": "y"}, [("x", "y")], edge_labels={("y", "x"): "1"})
    with pytest.raises(ValueError, match=r"pos: expected a position for every node, missing \['y'\]"):
        plot_graph({"x": "x", "y": "y"}, [("x", "y")], pos={"x": (0, 0)})
    plt.close("all")


def test_plot_trajectories():
    f = lambda p: p[:, 0] ** 2 + 10 * p[:, 1] ** 2  # noqa: E731
    path = np.array([[1.0, 1.0], [0.9, 0.0], [0.81, 0.0]])
    ax = plot_trajectories(f, {"GD": path}, xlim=(-1.5, 1.5), ylim=(-1.5, 1.5), xlabel="x", ylabel="y")
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), path[:, 0])
    assert ax.get_legend().get_texts()[0].get_text() == "GD"
    with pytest.raises(ValueError, match=r"trajectories\['bad'\]: expected a \(T, 2\) array of points, got shape \(3,\)"):
        plot_trajectories(f, {"bad": np.ones(3)}, xlim=(-1, 1), ylim=(-1, 1), xlabel="x", ylabel="y")
    with pytest.raises(ValueError, match="xlim: expected"):
        plot_trajectories(f, {}, xlim=(1, -1), ylim=(-1, 1), xlabel="x", ylabel="y")
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# Accessibility: colour-blind-safe palette, colour never the only cue, diverging maps for signs.

import itertools  # noqa: E402

import matplotlib as mpl  # noqa: E402
from colorspacious import cspace_convert  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from dlbook.plot import (  # noqa: E402
    DIVERGING_CMAP, LINESTYLES, MARKERS, PALETTE, plot_curves, plot_decision_boundary, plot_history,
    show_matrix, use_style,
)

# Smallest colour difference (Delta E in CAM02-UCS, Luo et al. 2006) between two palette colours,
# as seen with and without a colour-vision deficiency. About 1 is a just-noticeable difference;
# 10 keeps two thin lines apart at a glance.
MIN_DELTA_E = 10.0
CVD_TYPES = [None, "deuteranomaly", "protanomaly", "tritanomaly"]


def seen_as(colours, cvd_type):
    """The colours (hex) as a person with the given deficiency at full severity (dichromacy) sees
    them, in CAM02-UCS, by colorspacious' simulation (Machado et al. 2009)."""
    rgb = np.array([to_rgb(c) for c in colours])
    if cvd_type is not None:
        space = {"name": "sRGB1+CVD", "cvd_type": cvd_type, "severity": 100}
        rgb = np.clip(cspace_convert(rgb, space, "sRGB1"), 0, 1)
    return cspace_convert(rgb, "sRGB1", "CAM02-UCS")


def confusable_pairs(colours, cvd_type, min_delta_e=MIN_DELTA_E):
    """The pairs of `colours` closer than `min_delta_e` for that kind of colour vision."""
    ucs = seen_as(colours, cvd_type)
    return [(colours[i], colours[j], round(float(np.linalg.norm(ucs[i] - ucs[j])), 1))
            for i, j in itertools.combinations(range(len(colours)), 2)
            if np.linalg.norm(ucs[i] - ucs[j]) < min_delta_e]


@pytest.mark.parametrize("cvd_type", CVD_TYPES)
def test_palette_stays_distinguishable(cvd_type):
    assert len(set(PALETTE)) == len(PALETTE) == 8
    assert confusable_pairs(PALETTE, cvd_type) == []


def test_red_green_palette_fails_the_colour_vision_check():
    """Negative case: matplotlib's default tab:red and tab:green merge under deuteranopia."""
    red, green = "#d62728", "#2ca02c"
    assert confusable_pairs([red, green], None) == []
    assert [(a, b) for a, b, _ in confusable_pairs([red, green], "deuteranomaly")] == [(red, green)]
    # The default matplotlib cycle as a whole fails too: the house palette is not a formality.
    tab10 = mpl.rcParamsDefault["axes.prop_cycle"].by_key()["color"]
    assert confusable_pairs(tab10, "deuteranomaly")


def contrast_ratio(colour, background="#ffffff"):
    """WCAG 2.1 contrast ratio (L1 + 0.05) / (L2 + 0.05) of two colours' relative luminances."""
    lum = [cspace_convert(to_rgb(c), "sRGB1", "XYZ100")[1] / 100 for c in (colour, background)]
    return (max(lum) + 0.05) / (min(lum) + 0.05)


def test_line_colours_contrast_with_the_page():
    """The first five palette colours (lines) reach 3:1 against white (WCAG 1.4.11)."""
    assert [c for c in PALETTE[:5] if contrast_ratio(c) < 3.0] == []
    assert contrast_ratio("#000000") == pytest.approx(21.0, rel=1e-3)  # the largest ratio there is
    # Negative case: the palette's yellow, kept last for fills, would fail as a line colour.
    assert contrast_ratio(PALETTE[-1]) < 3.0


def test_house_cycle_pairs_every_colour_with_its_own_line_style():
    use_style()
    cycle = mpl.rcParams["axes.prop_cycle"].by_key()
    assert cycle["color"] == PALETTE
    assert len(cycle["linestyle"]) == len(PALETTE) == len(LINESTYLES) == len(MARKERS)
    styles = [str(s) for s in cycle["linestyle"]]
    assert len(set(styles)) == len(styles) and len(set(MARKERS)) == len(MARKERS)


def _dashes(line):
    """A line's dash pattern, comparable between lines (solid lines have no dashes)."""
    offset, seq = line._unscaled_dash_pattern
    return (offset, tuple(seq) if seq else None)


def test_plot_curves_never_tells_curves_apart_by_colour_alone():
    x = np.linspace(0, 1, 5)
    curves = {f"c{k}": x * k for k in range(5)}
    ax = plot_curves(x, curves, xlabel="x", ylabel="y")
    lines = ax.get_lines()
    assert len({_dashes(line) for line in lines}) == len(lines)
    assert len({line.get_color() for line in lines}) == len(lines)
    # Negative case: forcing one style on every curve leaves colour as the only cue.
    ax = plot_curves(x, curves, xlabel="x", ylabel="y", styles={k: "-" for k in curves})
    assert len({_dashes(line) for line in ax.get_lines()}) == 1
    plt.close("all")


def test_decision_boundary_gives_each_class_its_own_marker():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = np.arange(30) % 3
    ax = plot_decision_boundary(lambda P: (P[:, 0] > 0).astype(int), X, y)
    shapes = [tuple(np.round(c.get_paths()[0].vertices, 3).ravel()) for c in ax.collections
              if isinstance(c, mpl.collections.PathCollection)]
    assert len(shapes) == 3 and len(set(shapes)) == 3
    plt.close("all")


def test_plot_history_marks_runs_and_styles_splits():
    class History(dict):
        metrics = ("loss",)

    runs = {name: History(train_loss=[1.0, 0.5, 0.3], val_loss=[1.1, 0.7, 0.6])
            for name in ("a", "b")}
    ax = plot_history(runs, metrics=("loss",))[0]
    by_label = {line.get_label(): line for line in ax.get_lines()}
    assert by_label["a train"].get_marker() != by_label["b train"].get_marker()
    assert _dashes(by_label["a train"]) != _dashes(by_label["a val"])
    single = plot_history(runs["a"], metrics=("loss",))[0]
    assert {line.get_marker() for line in single.get_lines()} == {"None"}
    plt.close("all")


def test_show_matrix_uses_a_diverging_map_for_signed_values():
    signed = np.array([[-2.0, 0.0], [1.0, 3.0]])
    image = show_matrix(signed).get_images()[0]
    assert image.get_cmap().name == DIVERGING_CMAP
    assert image.norm.vmin == -image.norm.vmax  # white is zero
    image = show_matrix(np.array([[0.0, 1.0], [2.0, 3.0]])).get_images()[0]
    assert image.get_cmap().name == "Blues" and image.norm.vmin == 0
    # An explicit map is kept.
    assert show_matrix(signed, cmap="Greys").get_images()[0].get_cmap().name == "Greys"
    with pytest.raises(ValueError, match=r"m: expected a 2-D array, got shape \(3,\)"):
        show_matrix(np.ones(3))
    plt.close("all")
