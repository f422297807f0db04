"""The shared-step solver (memjax.hardware.lockstep): its linear algebra and its Rodas4 step
against closed forms; the whole-network comparison with the per-neuron steps is in
tests/test_operating_point.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from memjax.hardware.lockstep import _lu, _lu_solve, rodas4_step


def test_unrolled_lu_solves_as_numpy_does():
    """Batched 5x5 systems of the form I / (h gamma) - J (diagonal from the op-amps' own
    feedback, off-diagonal coupling): the unrolled factorisation without pivoting solves them
    as LAPACK does, to 1e-12."""
    rng = np.random.default_rng(0)
    jacobian = rng.normal(size=(7, 3, 5, 5)) - 6 * np.eye(5)
    matrix = np.eye(5) / 0.3 - jacobian
    rhs = rng.normal(size=(7, 3, 5))
    with jax.enable_x64(True):
        ours = np.asarray(_lu_solve(_lu(jnp.asarray(matrix)), jnp.asarray(rhs)))
    assert np.max(np.abs(ours - np.linalg.solve(matrix, rhs[..., None])[..., 0])) < 1e-12


def _cosine_problem(rate_constant):
    """y' = k (y - cos t) - sin t, whose solution from y(0) = 1 is cos t for every k: smooth
    for k = -1, stiff (a time constant of 1e-9 against steps of 0.1-1) for k = -1e9."""

    def rate(t, y):
        return rate_constant * (y - jnp.cos(t)) - jnp.sin(t)

    def linearised(t, y):
        jacobian = jnp.full(y.shape + (1,), rate_constant)
        return jacobian, rate_constant * jnp.sin(t) - jnp.cos(t)

    return rate, linearised


def test_rodas4_step_has_order_four_and_follows_stiff_equations():
    """One step from t = 0.3: the error falls as h^5, the local error of an order-4 method
    (for h = 0.1 -> 0.05 the ratio is 40.3, i.e. h^5.33, nearing 32 = 2^5 as h falls:
    46.4, 44.0, 40.3, 37.0 from h = 0.4 to 0.025, measured 2026-12-07), and with a time
    constant 1e-9 of the step the step lands on the slow solution (stiffly accurate,
    L-stable: within 1e-8, where an explicit step would diverge)."""
    with jax.enable_x64(True):
        t0 = 0.3
        y0 = jnp.full((1, 1, 1), np.cos(t0))
        rate, linearised = _cosine_problem(-1.0)
        errors = []
        for h in (0.1, 0.05):
            y1, norm = rodas4_step(rate, linearised, t0, h, y0, 1e-6, 1e-9)
            errors.append(abs(float(y1[0, 0, 0]) - np.cos(t0 + h)))
            assert np.isfinite(float(norm))
        assert 4.8 < np.log2(errors[0] / errors[1]) < 5.5
        stiff_rate, stiff_linearised = _cosine_problem(-1e9)
        for h in (0.1, 1.0):
            y1, _ = rodas4_step(stiff_rate, stiff_linearised, t0, h, y0, 1e-6, 1e-9)
            assert float(y1[0, 0, 0]) == pytest.approx(np.cos(t0 + h), abs=1e-8)


def test_rodas4_error_estimate_tracks_the_true_error():
    """The embedded estimate (order 3) bounds the step's error on a coupled two-state
    system with a closed form: y' = J y with J = [[-2, 1], [0, -0.5]], exp(J t) y0 exactly;
    the norm is within a factor 1-100 above the true error in the same units."""
    matrix = np.array([[-2.0, 1.0], [0.0, -0.5]])
    with jax.enable_x64(True):
        y0 = jnp.asarray([[[1.0, 2.0]]])

        def rate(t, y):
            return jnp.einsum("ij,...j->...i", jnp.asarray(matrix), y)

        def linearised(t, y):
            return jnp.broadcast_to(jnp.asarray(matrix), y.shape + (2,)), jnp.zeros_like(y)

        for h in (0.5, 0.25):
            y1, norm = rodas4_step(rate, linearised, 0.0, h, y0, 0.0, 1e-6)
            exact = jax.scipy.linalg.expm(jnp.asarray(matrix) * h) @ y0[0, 0]
            true = float(jnp.max(jnp.abs(y1[0, 0] - exact))) / 1e-6
            assert true <= float(norm) <= 100 * true


def test_options_the_shared_steps_cannot_honour_are_refused():
    """Settings only the per-neuron stepping reads (its grid's growth, its chunks, its diffrax
    solver, per-neuron memristor envelopes) are refused with the shared steps, each named,
    and so is the differentiable read-out, rather than ignored."""
    import diffrax

    from memjax.errors import MemjaxError
    from memjax.hardware.transient import TransientOptions, read_logits

    TransientOptions(stepping="per_stage", first_interval=0.01e-9, max_steps=500)
    for name, value in (
        ("growth", 1.1),
        ("chunk", 64),
        ("solver", diffrax.Kvaerno5()),
        ("memristor_envelopes", True),
    ):
        with pytest.raises(MemjaxError, match=f"TransientOptions.{name} is for"):
            TransientOptions(stepping="per_stage", **{name: value})
    with pytest.raises(MemjaxError, match="stepping must be one of"):
        TransientOptions(stepping="per_layer")
    with pytest.raises(MemjaxError, match="not differentiable"):
        read_logits(None, None, TransientOptions(stepping="per_stage"))
