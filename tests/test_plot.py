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
