"""Chapter 2, the conditional VAE (Sohn et al., 2015): encoder and decoder also see the label y,
Eq. (2.10), so that sampling with a chosen y draws that class.

* :class:`ConditionalVAE` - a :class:`dgm.vae.models.VAE` whose every method also takes the labels
  y; the networks, the ELBO and the importance-weighted bound are the VAE's, with the one-hot label
  appended to the encoder's and decoder's inputs.
* :func:`cvae_loss` - the negative conditional ELBO with the ``loss_fn(model, batch)`` signature
  of :func:`dgm.train.fit`, for ``(x, y)`` batches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.distributions import Distribution

from dgm._checks import positive_int
from dgm.vae.models import VAE

__all__ = ["ConditionalVAE", "cvae_loss"]


class ConditionalVAE(VAE):
    """A conditional VAE (Sohn et al., 2015): every distribution also sees the label y, Eq. (2.10):

        L(x, y) = E_{q_phi(z|x,y)}[log p_theta(x|z,y)] - KL(q_phi(z|x,y) || p(z)),

    with the prior p(z) = N(0, I) left unconditional. The one-hot label is concatenated to the
    encoder's input (mlp: to the flattened x; conv: as ``num_classes`` constant input channels)
    and to the decoder's input [z, y]. Sampling with a chosen y generates that class.

    Labels ``y`` may be class indices (an int tensor ``(N,)``, values in ``[0, num_classes)``) or
    one-hot rows ``(N, num_classes)``. Arguments are those of :class:`VAE`, plus ``num_classes``.
    """

    def __init__(
        self,
        encoder_kind: str = "mlp",
        likelihood: str = "bernoulli",
        code_dim: int = 16,
        in_shape=(1, 28, 28),
        hidden=None,
        num_classes: int = 10,
        x_logvar: float = 0.0,
        learn_x_logvar: bool = True,
    ):
        self._num_classes = positive_int(num_classes, "num_classes")
        super().__init__(encoder_kind, likelihood, code_dim, in_shape, hidden, x_logvar, learn_x_logvar)
        self.num_classes = self._num_classes

    def one_hot(self, y, n: int | None = None) -> torch.Tensor:
        """Labels as one-hot rows ``(N, num_classes)`` on the model's device and dtype.

        Args:
            y: an int (one class for all ``n`` rows), class indices ``(N,)`` or one-hot ``(N, num_classes)``.
            n: the expected number of rows N (checked), or the number of rows for an int y.
        """
        ref = self._param()
        k = self.num_classes
        if isinstance(y, int) and not isinstance(y, bool):
            if n is None:
                raise ValueError("y is a single int: give the number of rows n")
            y = torch.full((n,), y, dtype=torch.long, device=ref.device)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be an int or a tensor of class labels, got {type(y).__name__}")
        if y.dim() == 2 and y.is_floating_point():
            if y.shape[1] != k:
                raise ValueError(f"one-hot y must have shape (N, {k}), got {tuple(y.shape)}")
            onehot = y.to(device=ref.device, dtype=ref.dtype)
        elif y.dim() == 1 and not y.is_floating_point() and y.dtype != torch.bool:
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= k):
                raise ValueError(
                    f"y must hold class labels in [0, {k}) (num_classes={k}), got values in "
                    f"[{int(y.min())}, {int(y.max())}]"
                )
            onehot = F.one_hot(y.to(ref.device), k).to(ref.dtype)
        else:
            raise ValueError(
                f"y must be integer class labels of shape (N,) or float one-hot rows (N, {k}), "
                f"got dtype {y.dtype} and shape {tuple(y.shape)}"
            )
        if n is not None and onehot.shape[0] != n:
            raise ValueError(f"y must have one label per example ({n}), got {onehot.shape[0]}")
        return onehot

    def encode(self, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q_phi(z|x, y), each ``(N, code_dim)``."""
        x = self._check_x(x)
        return self._encode(x, self.one_hot(y, x.shape[0]))

    def decode(self, z: torch.Tensor, y) -> torch.Tensor:
        """Parameters of p_theta(x|z, y) (logits or mean), ``(N, *in_shape)``."""
        z = self._check_z(z)
        return self._decode(z, self.one_hot(y, z.shape[0]))

    def decode_mean(self, z: torch.Tensor, y) -> torch.Tensor:
        """E_{p_theta(x|z,y)}[x]."""
        return self._mean_of(self.decode(z, y))

    def forward(self, x: torch.Tensor, y) -> torch.Tensor:
        """The reconstruction mean at z = mu_phi(x, y)."""
        x = self._check_x(x)
        return self._reconstruct(x, self.one_hot(y, x.shape[0]))

    def q_phi(self, x: torch.Tensor, y) -> Distribution:
        """q_phi(z|x, y) as ``Independent(Normal(mu, sigma), 1)``, batch shape ``(N,)``."""
        return self._q(*self.encode(x, y))

    def p_theta(self, z: torch.Tensor, y) -> Distribution:
        """p_theta(x|z, y) as a ``torch.distributions`` object with batch shape ``(N,)``."""
        return self._p(self.decode(z, y))

    def elbo(self, x, y, n_samples: int = 1, generator=None):
        """``(recon, kl)`` of Eq. (2.10), each ``(N,)``; ELBO = recon - kl."""
        x = self._check_x(x)
        return self._elbo(x, self.one_hot(y, x.shape[0]), n_samples, generator)

    def loss(self, x, y, beta: float = 1.0) -> torch.Tensor:
        """mean(-recon + beta * kl) over the batch."""
        return self._neg_elbo(beta, x, y)

    def _batch_loss(self, batch, beta) -> torch.Tensor:
        return cvae_loss(self, batch, beta)

    def iwae_bound(self, x, y, k: int = 50, chunk: int | None = None, generator=None) -> torch.Tensor:
        """L_k(x | y), Eq. (2.9) with everything conditioned on y, shape ``(N,)``."""
        x = self._check_x(x)
        return self._iwae(x, self.one_hot(y, x.shape[0]), k, chunk, generator)

    def sample(self, n: int, y, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ N(0, I), then E[x | z, y]: ``n`` pictures of class(es) ``y`` (an int or ``(n,)`` labels)."""
        n = positive_int(n, "n")
        return self._sample(n, self.one_hot(y, n), generator)

    def as_autoencoder(self):
        raise TypeError("a ConditionalVAE needs y to encode and decode; it has no plain autoencoder view")

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_classes={self.num_classes}"


def cvae_loss(model: ConditionalVAE, batch, beta: float = 1.0) -> torch.Tensor:
    """The negative conditional ELBO, Eq. (2.10), averaged over a batch ``(x, y)``."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError("batch must be an (x, y) tuple: a ConditionalVAE needs the labels y")
    return model.loss(batch[0], batch[1], beta)
