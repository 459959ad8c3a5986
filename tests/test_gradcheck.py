"""dlbook.gradcheck: the numerical gradient is accurate, and the checker reports and raises."""

from __future__ import annotations

import numpy as np
import pytest

from dlbook.gradcheck import GradientCheckError, check_gradients, numerical_gradient, relative_error


def test_numerical_gradient_of_known_functions(rng):
    x = rng.standard_normal((3, 4))
    # d/dx sum(sin(x) * G) = cos(x) * G
    g = rng.standard_normal((3, 4))
    num = numerical_gradient(np.sin, x, g)
    np.testing.assert_allclose(num, np.cos(x) * g, rtol=1e-8, atol=1e-10)
    # scalar function, dout=None: d/dx sum(x^3) = 3 x^2
    np.testing.assert_allclose(numerical_gradient(lambda v: np.sum(v ** 3), x), 3 * x ** 2, rtol=1e-8, atol=1e-9)


def test_x_is_restored_and_float64_required(rng):
    x = rng.standard_normal(5)
    before = x.copy()
    numerical_gradient(np.exp, x)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="float64"):
        numerical_gradient(np.exp, x.astype(np.float32))
    with pytest.raises(ValueError, match="h: expected a positive step"):
        numerical_gradient(np.exp, x, h=0.0)


def test_check_gradients_reports_the_worst_element(rng):
    w = rng.standard_normal((2, 3))
    x = rng.standard_normal((4, 3))
    f = lambda x, w: x @ w.T  # noqa: E731
    dout = rng.standard_normal((4, 2))
    results = check_gradients(f, {"x": x, "w": w}, {"x": dout @ w, "w": dout.T @ x}, dout)
    assert set(results) == {"x", "w"}
    assert all(r.rel_error < 1e-8 for r in results.values())
    assert "dw[" in str(results["w"])


def test_check_gradients_raises_with_argument_and_index(rng):
    w = rng.standard_normal((2, 3))
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal((4, 2))
    good = dout.T @ x
    bad = good.copy()
    bad[1, 2] += 1e-3
    with pytest.raises(GradientCheckError, match=r"'w' at index \(1, 2\).*1 of 6 elements disagree"):
        check_gradients(lambda x, w: x @ w.T, {"x": x, "w": w}, {"w": bad}, dout)


def test_inputs_are_not_modified_and_names_are_checked(rng):
    x = rng.standard_normal(3)
    before = x.copy()
    check_gradients(lambda x: x ** 2, {"x": x}, {"x": 2 * x})
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match="'y' is not one of the inputs"):
        check_gradients(lambda x: x, {"x": x}, {"y": x})
    with pytest.raises(ValueError, match="analytic"):
        check_gradients(lambda x: x, {"x": x}, {"x": np.ones(4)})


def test_relative_error():
    assert relative_error(1.0, 1.0) == 0.0
    assert relative_error(1.0, -1.0) == pytest.approx(1.0)
    assert relative_error(0.0, 0.0) == 0.0


def test_numerical_jacobian_matches_torch_and_vec_orders(rng):
    import torch

    from dlbook.gradcheck import numerical_jacobian

    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((2, 3))
    f = lambda v: np.tanh(w @ v)  # noqa: E731  (2, 4) output
    jac = numerical_jacobian(f, x)
    jac_t = torch.autograd.functional.jacobian(lambda v: torch.tanh(torch.from_numpy(w) @ v), torch.from_numpy(x))
    np.testing.assert_allclose(jac, jac_t.numpy().reshape(8, 12), rtol=1e-7, atol=1e-9)
    # Column-major vec: for y = W x (no tanh), d vec(y) / d vec(x)^T = I_4 kron W (Wei (2017) appendix A).
    jac_f = numerical_jacobian(lambda v: w @ v, x, order="F")
    np.testing.assert_allclose(jac_f, np.kron(np.eye(4), w), rtol=1e-8, atol=1e-9)
    # ... which is not what the row-major ordering gives: the two orders really differ.
    assert not np.allclose(numerical_jacobian(lambda v: w @ v, x, order="C"), np.kron(np.eye(4), w))
    with pytest.raises(ValueError, match="order"):
        numerical_jacobian(f, x, order="K")
    with pytest.raises(ValueError, match="float64"):
        numerical_jacobian(f, x.astype(np.float32))


def test_check_module_gradients_passes_and_catches_a_broken_backward(rng):
    from dlbook.gradcheck import check_module_gradients
    from dlbook.linear import Linear

    layer = Linear(3, 2, rng=rng)
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal((4, 2))
    results = check_module_gradients(layer, x, dout)
    assert set(results) == {"x", "w", "b"}
    assert all(r.rel_error < 1e-8 for r in results.values())
    w_before = layer.params["w"].copy()
    np.testing.assert_array_equal(layer.params["w"], w_before)  # restored after perturbation

    class LinearWrongBias(Linear):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["b"] = dout.mean(axis=0)  # should be the sum over the batch
            return dx

    broken = LinearWrongBias(3, 2, rng=rng)
    with pytest.raises(GradientCheckError, match=r"'b' at index \(\d,\)"):
        check_module_gradients(broken, x, dout)


def test_check_module_gradients_bad_input(rng):
    from dlbook.gradcheck import check_module_gradients
    from dlbook.linear import Linear

    layer = Linear(3, 2, rng=rng)
    with pytest.raises(ValueError, match=r"dout: expected shape \(4, 2\), got \(4, 3\)"):
        check_module_gradients(layer, np.ones((4, 3)), np.ones((4, 3)))
    single = Linear(3, 2, rng=rng, dtype=np.float32)
    with pytest.raises(ValueError, match=r"params\['w'\]: expected a float64 ndarray"):
        check_module_gradients(single, np.ones((4, 3)))


def test_passed_line_states_the_tolerance_checked():
    from dlbook.gradcheck import passed_line

    x = np.linspace(-1.0, 1.0, 5)
    w = np.array([0.5, -2.0])
    results = check_gradients(lambda x, w: np.outer(w, x ** 2), {"x": x, "w": w},
                              {"x": 2 * x * w.sum(), "w": np.full(2, (x ** 2).sum())}, rtol=1e-7, atol=1e-10)
    assert passed_line(results) == "x, w: agree with central differences (rtol 1e-7, atol 1e-10)"
    with pytest.raises(ValueError, match="nothing was checked"):
        passed_line({})
    other = check_gradients(lambda x: x ** 2, {"x": x}, {"x": 2 * x})  # default tolerance
    with pytest.raises(ValueError, match="different tolerances"):
        passed_line(results | {"y": other["x"]})
