"""The one shared check for normalizing-flow transforms (chapter 4 and any later chapter).

``check_transform(transform, x)`` verifies, against an independent reference, everything a flow
layer promises (``forward(x) -> (y, log_det)``, ``inverse(y) -> (x, log_det)``):

1. invertibility: inverse(forward(x)) == x and forward(inverse(y)) == y;
2. the forward log_det equals log |det J| of the Jacobian computed by
   ``torch.autograd.functional.jacobian`` (then ``torch.linalg.slogdet``), one example at a time;
   the same for the inverse's log_det at y;
3. forward and inverse log-dets sum to zero: log |det J_f(x)| + log |det J_{f^-1}(f(x))| = 0;
4. log_det has shape (N,), one number per example.

Run it in float64 (the helper converts the transform and x) so tolerances can be tight. Layers
with a data-dependent initialisation (ActNorm) are initialised by one ``inverse`` pass over
``forward(x)`` before anything is checked, so that the parameters are fixed during the check.
"""

from __future__ import annotations

import copy

import torch


def _per_example_fn(fn, shape):
    """v (flat) -> flat output of fn on the single example v.reshape(1, *shape)."""

    def f(v):
        out, _ = fn(v.reshape(1, *shape))
        return out.reshape(-1)

    return f


def check_transform(transform, x: torch.Tensor, atol: float = 1e-8, rtol: float = 1e-6, n_jacobian: int = 4):
    """Assert that ``transform`` is a correct invertible layer at the batch ``x`` (see module doc).

    Args:
        transform: an object with ``forward(x) -> (y, log_det)`` and ``inverse(y) -> (x, log_det)``
            (an ``nn.Module``; it is deep-copied and converted to float64, the original is untouched).
        x: a batch ``(N, ...)``; converted to float64.
        atol, rtol: tolerances of the comparisons.
        n_jacobian: how many examples get the (expensive) autograd Jacobian check.

    Returns:
        ``(y, log_det_forward, log_det_inverse)`` of the float64 copy, for further checks.
    """
    t = copy.deepcopy(transform).double()
    x = x.detach().double()
    n, shape = x.shape[0], tuple(x.shape[1:])
    with torch.no_grad():  # data-dependent initialisation (ActNorm) happens here, before the checks
        t.inverse(t(x)[0])

    y, ld_f = t(x)
    assert y.shape == x.shape, f"forward changed the shape: {tuple(x.shape)} -> {tuple(y.shape)}"
    assert ld_f.shape == (n,), f"forward log_det must have shape ({n},), got {tuple(ld_f.shape)}"
    x_back, ld_i = t.inverse(y)
    assert ld_i.shape == (n,), f"inverse log_det must have shape ({n},), got {tuple(ld_i.shape)}"
    torch.testing.assert_close(x_back, x, atol=atol, rtol=rtol, msg="inverse(forward(x)) != x")
    y_again, _ = t(x_back)
    torch.testing.assert_close(y_again, y, atol=atol, rtol=rtol, msg="forward(inverse(y)) != y")
    torch.testing.assert_close(ld_f + ld_i, torch.zeros_like(ld_f), atol=atol, rtol=0,
                               msg="forward and inverse log-dets do not sum to zero")

    jac = torch.autograd.functional.jacobian
    for i in range(min(n, n_jacobian)):
        j_f = jac(_per_example_fn(t.forward, shape), x[i].reshape(-1))
        torch.testing.assert_close(ld_f[i], torch.linalg.slogdet(j_f)[1], atol=atol * 100, rtol=rtol,
                                   msg=f"forward log_det of example {i} != log|det J| from autograd")
        j_i = jac(_per_example_fn(t.inverse, shape), y[i].detach().reshape(-1))
        torch.testing.assert_close(ld_i[i], torch.linalg.slogdet(j_i)[1], atol=atol * 100, rtol=rtol,
                                   msg=f"inverse log_det of example {i} != log|det J| from autograd")
        torch.testing.assert_close(j_f @ j_i, torch.eye(j_f.shape[0], dtype=j_f.dtype), atol=atol * 100, rtol=rtol,
                                   msg=f"J_f J_f^-1 != I at example {i}")
    return y.detach(), ld_f.detach(), ld_i.detach()
