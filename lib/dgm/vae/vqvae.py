"""Chapter 2, the vector-quantised VAE (van den Oord et al., 2017): a discrete latent grid, the
nearest-codebook quantiser with the straight-through gradient, and its loss, Eq. (2.11).

* :class:`VQVAE` - convolutional encoder, codebook, decoder; ``quantize`` returns the pieces of
  Eq. (2.11), ``codebook_usage`` how many codes are in use.
* :func:`vqvae_loss` - Eq. (2.11) averaged over a batch, with the ``loss_fn(model, batch)``
  signature of :func:`dgm.train.fit`.
"""

from __future__ import annotations

import torch
from torch import nn

from dgm._checks import batch_x, finite_number, float_tensor, positive_int, shape_tuple
from dgm.distributions import sum_except_batch

__all__ = ["VQVAE", "vqvae_loss"]


class VQVAE(nn.Module):
    """The vector-quantised VAE of van den Oord, Vinyals & Kavukcuoglu (2017), Eq. (2.11):

        z_e = encoder(x) in R^{D x h x w},   k_j = argmin_k ||z_e,j - e_k||  (nearest codebook vector),
        z_q,j = e_{k_j},                      x_hat = decoder(z_q),
        loss = ||x - x_hat||^2 + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2,

    sg = stop-gradient (``.detach()``). The argmin has no gradient, so the decoder's input is
    the *straight-through* z_e + sg[z_q - z_e]: its value is z_q and its gradient is copied to
    z_e. The codebook e (``codebook``, an ``nn.Embedding(K, D)``) is therefore trained only by
    the codebook term, the encoder by the reconstruction and the commitment term (beta = 0.25).
    Norms are summed over the whole grid (all h x w positions and D); the reconstruction term is
    the summed squared error per image (a Gaussian decoder with fixed variance, up to constants).

    Encoder: ``downsample`` stride-2 4x4 convolutions (``hidden`` channels), a 3x3 convolution
    and a 1x1 convolution to D channels; decoder: the mirror image, with a sigmoid output (data in
    [0, 1]). The latent grid is ``(H / 2**downsample, W / 2**downsample)``.

    Args:
        in_shape: ``(C, H, W)``, H and W divisible by ``2 ** downsample``.
        num_embeddings: K, the codebook size.
        embedding_dim: D, the dimension of each code vector.
        hidden: channels of the convolutional layers.
        downsample: number of stride-2 layers.
        beta: commitment weight.
    """

    def __init__(
        self,
        in_shape=(1, 28, 28),
        num_embeddings: int = 64,
        embedding_dim: int = 16,
        hidden: int = 64,
        downsample: int = 2,
        beta: float = 0.25,
    ):
        super().__init__()
        self.in_shape = shape_tuple(in_shape, "in_shape")
        if len(self.in_shape) != 3:
            raise ValueError(f"in_shape must be (C, H, W), got {self.in_shape}")
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim")
        hidden = positive_int(hidden, "hidden")
        self.downsample = positive_int(downsample, "downsample")
        self.beta = finite_number(beta, "beta", minimum=0.0)
        c, h, w = self.in_shape
        f = 2**self.downsample
        if h % f or w % f:
            raise ValueError(f"in_shape {self.in_shape}: H and W must be divisible by 2**downsample = {f}")
        self.grid = (h // f, w // f)

        enc: list[nn.Module] = []
        prev = c
        for _ in range(self.downsample):
            enc += [nn.Conv2d(prev, hidden, 4, stride=2, padding=1), nn.ReLU()]
            prev = hidden
        enc += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, self.embedding_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [nn.Conv2d(self.embedding_dim, hidden, 3, padding=1), nn.ReLU()]
        for i in range(self.downsample):
            last = i == self.downsample - 1
            dec.append(nn.ConvTranspose2d(hidden, c if last else hidden, 4, stride=2, padding=1))
            dec.append(nn.Sigmoid() if last else nn.ReLU())
        self.decoder = nn.Sequential(*dec)
        self.codebook = nn.Embedding(self.num_embeddings, self.embedding_dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / self.num_embeddings, 1.0 / self.num_embeddings)

    def _check_x(self, x) -> torch.Tensor:
        x = float_tensor(x, "x")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}"
            )
        return x

    def _check_indices(self, idx, name: str = "indices") -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.is_floating_point() or idx.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor of codebook indices")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
            raise ValueError(f"{name} must lie in [0, {self.num_embeddings}) (num_embeddings)")
        return idx

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """z_e(x), the encoder's output before quantisation, ``(N, D, h, w)``."""
        return self.encoder(self._check_x(x))

    def nearest(self, z_e: torch.Tensor) -> torch.Tensor:
        """k_j = argmin_k ||z_e,j - e_k||^2 for every grid position: ``(N, h, w)`` long."""
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, self.embedding_dim)
        e = self.codebook.weight
        d2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]
        n, _, h, w = z_e.shape
        return d2.argmin(dim=1).reshape(n, h, w)

    def quantize(self, z_e: torch.Tensor):
        """Quantise z_e and return the pieces of Eq. (2.11).

        Returns:
            ``(z_q_st, indices, codebook_loss, commitment_loss)``: z_q_st = z_e + sg[z_q - z_e]
            ``(N, D, h, w)`` (value z_q, gradient to z_e), indices ``(N, h, w)``, and per example
            ``||sg[z_e] - e||^2`` and ``||z_e - sg[e]||^2`` (summed over the grid), each ``(N,)``.
        """
        z_e = float_tensor(z_e, "z_e")
        if z_e.dim() != 4 or z_e.shape[1] != self.embedding_dim:
            raise ValueError(f"z_e must have shape (N, {self.embedding_dim}, h, w), got {tuple(z_e.shape)}")
        with torch.no_grad():
            idx = self.nearest(z_e)
        z_q = self.codebook(idx).permute(0, 3, 1, 2)  # (N, D, h, w), differentiable w.r.t. e
        codebook_loss = sum_except_batch((z_e.detach() - z_q).pow(2))
        commitment_loss = sum_except_batch((z_e - z_q.detach()).pow(2))
        z_q_st = z_e + (z_q - z_e).detach()
        return z_q_st, idx, codebook_loss, commitment_loss

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The discrete code of x: nearest-codebook indices, ``(N, h, w)`` long."""
        return self.nearest(self.encode_continuous(x))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """x_hat = decoder(e_{indices}) for indices ``(N, h, w)``; returns ``(N, *in_shape)``."""
        idx = self._check_indices(indices)
        if idx.dim() != 3:
            raise ValueError(f"indices must have shape (N, h, w), got {tuple(idx.shape)}")
        return self.decoder(self.codebook(idx).permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor):
        """Returns ``(x_hat, vq_loss, indices)``; vq_loss = mean over the batch of
        ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 (a scalar)."""
        z_e = self.encode_continuous(x)
        z_q_st, idx, codebook_loss, commitment_loss = self.quantize(z_e)
        x_hat = self.decoder(z_q_st)
        vq_loss = (codebook_loss + self.beta * commitment_loss).mean()
        return x_hat, vq_loss, idx

    def codebook_usage(self, indices: torch.Tensor) -> tuple[float, float]:
        """How much of the codebook ``indices`` use: ``(fraction, perplexity)``.

        fraction = (#distinct codes used) / K; perplexity = exp(H(p)) with p the empirical code
        frequencies, between 1 (one code) and K (all codes equally often).
        """
        idx = self._check_indices(indices)
        if idx.numel() == 0:
            raise ValueError("indices must not be empty")
        counts = torch.bincount(idx.reshape(-1), minlength=self.num_embeddings).double()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return float((counts > 0).double().mean()), float(entropy.exp())

    def extra_repr(self) -> str:
        return (
            f"in_shape={self.in_shape}, num_embeddings={self.num_embeddings}, "
            f"embedding_dim={self.embedding_dim}, grid={self.grid}, beta={self.beta}"
        )


def vqvae_loss(model: VQVAE, batch) -> torch.Tensor:
    """Eq. (2.11) averaged over a batch: mean ||x - x_hat||^2 (summed per image) + vq_loss.

    ``batch`` is a tensor x or an ``(x, y, ...)`` tuple (labels ignored).
    """
    x = batch_x(batch)
    x_hat, vq_loss, _ = model(x)
    return sum_except_batch((x - x_hat).pow(2)).mean() + vq_loss

