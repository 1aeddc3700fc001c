"""Widget demos: one small live demo per chapter widget, for a quick look and the browser tests.

Every live widget of :mod:`dgm.widgets` has one entry here: a function, registered with
:func:`demo`, that builds the widget on a tiny model in a few seconds on one CPU thread (a model
trained for about a second on sklearn's 8x8 digits or a toy 2-D set, or an untrained one; the
chapter-7 demo needs 28x28 MNIST from :func:`dgm.data.mnist`'s cache) and returns it. Nothing is
downloaded. ``tests/test_browser.py`` serves each demo as its own
notebook with Voila on 127.0.0.1, moves every slider of the rendered widget with the keyboard
or the mouse, picks the listed dropdown options, clicks the listed buttons and the listed points
of its matplotlib canvases (ipympl), and asserts after each action that the rendered picture
changed. Adding a chapter's widget to the browser tests is adding one decorated function here,
in the chapter's section below, e.g.::

    @demo("gan_playground", chapter=3, widget="GANPlayground",
          still=("N steps", "k (D steps)", "lr G", "lr D"),    # sliders that redraw nothing
          selects=(("game", "wgan-gp"),), buttons=("run N steps", "reset"))
    def _gan_playground():
        \"\"\"One line that says what the reader sees (the demo's title).\"\"\"
        return GANPlayground(toy2d("ring8", 2000, seed=0), n_steps=20, hidden=(32, 32))

What a builder must return: an object that displays as an ipywidgets box (its ``widget``
attribute, or the object itself, is an ``ipywidgets.Widget``) in which every slider not listed
in ``still`` changes the picture (an ``ipywidgets.Image`` or an ipympl canvas) when it moves;
``still`` sliders are moved last and must only not break anything. Sliders are found by their
``description``, dropdowns and buttons too. ``tests/test_demos.py`` fails while a public widget
class of :mod:`dgm.widgets` has no demo, and checks every demo without a browser, so a broken
entry shows up fast.

This is course tooling, not part of the student library ``dgm``: it lives in the repository's
``demos/`` folder, which is not a package. Import it with that folder on ``sys.path`` (the tests
insert it); the Voila kernels find it through the ``PYTHONPATH`` that :func:`voila_command` sets.

Use it:

* :data:`DEMOS` - name -> :class:`Demo`, in registration (chapter) order.
* :func:`build` - ``build("latent_plane")`` builds one demo's widget (in a notebook cell it shows).
* :func:`notebook` / :func:`write_notebooks` - one demo notebook per entry (what Voila serves).
* ``.venv/bin/python demos/widget_demos.py write DIR`` writes them;
  ``.venv/bin/python demos/widget_demos.py serve`` serves them with Voila on 127.0.0.1 (open the
  printed address in a browser); ``... list`` lists them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat
import torch
from jupyter_core.paths import jupyter_path

from dgm.ae import MLPAE, ae_loss
from dgm.autoregressive import GatedPixelCNN, nll_loss
from dgm.config import seed_everything
from dgm.data import captions, digits, mnist, toy2d
from dgm.diffusion import EpsLoss, Guided, NoiseSchedule, TimeMLP, sample_ddim, sample_ddpm
from dgm.flows import GlowMLP, RealNVP, flow_loss
from dgm.gan import MLPGenerator
from dgm.multimodal import CaptionDenoiser, CaptionEpsLoss, CaptionGuided
from dgm.train import fit
from dgm.vae import VAE, vae_loss
from dgm.widgets import (
    BenchViewer,
    CaptionStudio,
    FlowLayerExplorer,
    GANLatentExplorer,
    GANPlayground,
    GuidanceSlider,
    LatentExplorer,
    LatentPlane,
    PixelSampler,
    TemperatureExplorer,
    TimestepScrubber,
)

__all__ = [
    "Demo", "DEMOS", "DEMOS_DIR", "VOILA_EXTENSIONS", "demo", "build", "notebook", "write_notebooks",
    "write_voila_template", "voila_command",
]

#: The folder of this module: on the Voila kernels' ``PYTHONPATH``, so a demo notebook's
#: ``from widget_demos import build`` finds it.
DEMOS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Demo:
    """One registered widget demo.

    Attributes:
        name: the demo's id, also its notebook's file name (``<name>.ipynb``).
        chapter: the lecture chapter the widget belongs to.
        widget: the class name in :mod:`dgm.widgets` that the demo shows.
        title: one line shown above the widget.
        builder: ``builder() -> widget object`` (see the module docstring).
        clicks: points to click on each ipympl canvas of the widget, as fractions
            ``(x, y)`` of the canvas' width and height from its top-left corner; every click
            must change the picture.
        still: descriptions of sliders that are not expected to change the picture (they set
            parameters for later, like a number of steps); they are moved last.
        selects: ``(description, option)`` pairs: pick ``option`` in the dropdown of that
            description; each must change the picture.
        buttons: descriptions of buttons to click, in this order, after the sliders and the
            dropdowns; each click must change the picture.
    """

    name: str
    chapter: int
    widget: str
    title: str
    builder: Callable[[], object] = field(repr=False)
    clicks: tuple[tuple[float, float], ...] = ()
    still: tuple[str, ...] = ()
    selects: tuple[tuple[str, str], ...] = ()
    buttons: tuple[str, ...] = ()


DEMOS: dict[str, Demo] = {}


def demo(name: str, *, chapter: int, widget: str, clicks=(), still=(), selects=(), buttons=()):
    """Register the decorated zero-argument function as the demo ``name`` (see :class:`Demo`).

    The function's docstring (first line) becomes the demo's title.

    Raises:
        ValueError: ``name`` already registered or not a valid file name, ``chapter`` not a
            positive int, or a click point outside the unit square.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like string (it names a notebook), got {name!r}")
    if name in DEMOS:
        raise ValueError(f"name {name!r} is already registered (by {DEMOS[name].builder.__qualname__})")
    if isinstance(chapter, bool) or not isinstance(chapter, int) or chapter < 1:
        raise ValueError(f"chapter must be a positive int, got {chapter!r}")
    clicks = tuple((float(x), float(y)) for x, y in clicks)
    if not all(0.0 < x < 1.0 and 0.0 < y < 1.0 for x, y in clicks):
        raise ValueError(f"clicks must be (x, y) fractions strictly inside (0, 1), got {clicks!r}")

    def register(fn: Callable[[], object]) -> Callable[[], object]:
        title = (fn.__doc__ or widget).strip().splitlines()[0]
        DEMOS[name] = Demo(name, chapter, widget, title, fn, clicks, tuple(still),
                           tuple((str(d), str(o)) for d, o in selects), tuple(buttons))
        return fn

    return register


def build(name: str):
    """Build the demo ``name``'s live widget (one CPU thread, fixed seed) and return it.

    Raises:
        ValueError: ``name`` is not a registered demo.
    """
    if name not in DEMOS:
        raise ValueError(f"name must be one of the registered demos {sorted(DEMOS)}, got {name!r}")
    torch.set_num_threads(1)
    seed_everything(0)
    return DEMOS[name].builder()


def notebook(name: str):
    """The demo ``name`` as a notebook (nbformat v4): a title and one cell that shows the widget."""
    if name not in DEMOS:
        raise ValueError(f"name must be one of the registered demos {sorted(DEMOS)}, got {name!r}")
    d = DEMOS[name]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Chapter {d.chapter}: {d.widget}\n\n{d.title}"),
        nbformat.v4.new_code_cell(f"from widget_demos import build\n\nbuild({name!r})"),
    ]
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name}-{i}"
    return nb


def write_notebooks(folder, names=None) -> list[Path]:
    """Write ``<name>.ipynb`` for each demo (all by default) into ``folder``; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DEMOS if names is None else names:
        path = folder / f"{name}.ipynb"
        nbformat.write(notebook(name), path)
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- shared tiny models
def _digits(n: int = 512):
    """The first ``n`` of sklearn's 8x8 digits in [0, 1], shape (n, 1, 8, 8), and their labels."""
    x, y = digits()
    return x[:n], y[:n]


# ---- Chapter 1: autoencoders ----
@demo("latent_explorer", chapter=1, widget="LatentExplorer")
def _latent_explorer():
    """An MLP autoencoder (code size 4) trained for 150 steps on 8x8 digits: move any slider."""
    x, y = _digits()
    model = MLPAE((1, 8, 8), code_dim=4, hidden=(64,))
    fit(model, ae_loss, x, steps=150, batch_size=128, lr=3e-3, progress=False, seed=0)
    return LatentExplorer(model, x[:16], labels=y[:16].tolist(), n_sliders=4)


# ---- Chapter 2: VAE and the ELBO ----
@demo("latent_plane", chapter=2, widget="LatentPlane", clicks=((0.3, 0.3), (0.7, 0.75)))
def _latent_plane():
    """A VAE with a 2-D code trained for 200 steps on 8x8 digits: click the plane or move z_1, z_2."""
    x, y = _digits()
    model = VAE("mlp", "bernoulli", code_dim=2, in_shape=(1, 8, 8), hidden=(64,))
    fit(model, vae_loss, x, steps=200, batch_size=128, lr=3e-3, progress=False, seed=0)
    with torch.no_grad():
        mu, _ = model.encode(x[:300])
    return LatentPlane(model, mu, labels=y[:300].tolist(), extent=(-3.0, 3.0, -3.0, 3.0))


# ---- Chapter 3: the GAN game ----
@demo("gan_latent_explorer", chapter=3, widget="GANLatentExplorer", selects=(("label y", "7"),),
      buttons=("new z_a", "new z_b"))
def _gan_latent_explorer():
    """An untrained conditional MLP generator G(z | y) of 8x8 pictures: sliders, label, new z_a / z_b."""
    generator = MLPGenerator(latent_dim=16, out_shape=(1, 8, 8), hidden=(64,), out_activation="sigmoid",
                             num_classes=10)
    return GANLatentExplorer(generator, n_sliders=4, seed=0)


@demo("gan_playground", chapter=3, widget="GANPlayground", still=("N steps", "k (D steps)", "lr G", "lr D"),
      selects=(("game", "wgan-gp"),), buttons=("run N steps", "reset"))
def _gan_playground():
    """A 2-D GAN on the ring of 8 Gaussians, trained live: pick the game, press 'run N steps', 'reset'."""
    return GANPlayground(toy2d("ring8", 2000, seed=0), n_steps=20, hidden=(32, 32), batch_size=64, seed=0)


# ---- Chapter 4: normalizing flows ----
@demo("flow_layer_explorer", chapter=4, widget="FlowLayerExplorer")
def _flow_layer_explorer():
    """A RealNVP (4 couplings) trained for 200 steps on two moons: slide through its layers."""
    data = toy2d("moons", 2000, seed=0)
    flow = RealNVP(2, num_layers=4, hidden=32)
    fit(flow, flow_loss, data, steps=200, batch_size=256, lr=3e-3, progress=False, seed=0)
    return FlowLayerExplorer(flow, data=data[:500], n_points=400, grid_lines=7)


@demo("temperature_explorer", chapter=4, widget="TemperatureExplorer")
def _temperature_explorer():
    """A small Glow-style flow trained for 100 steps on 8x8 digits: slide the temperature T."""
    x, _ = _digits()
    flow = GlowMLP(64, num_layers=2, hidden=64, mixing="permutation")
    fit(flow, lambda m, b: flow_loss(m, b, num_levels=17), x, steps=100, batch_size=128, lr=2e-3,
        progress=False, seed=0)
    return TemperatureExplorer(flow, (1, 8, 8), n=16, nrow=8)


# ---- Chapter 5: diffusion models ----
def _schedule(T: int):
    """A linear schedule for a short chain: Ho et al.'s betas scaled by 1000 / T."""
    return NoiseSchedule(T, "linear", beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)


@demo("timestep_scrubber", chapter=5, widget="TimestepScrubber")
def _timestep_scrubber():
    """A DDPM with T = 40 steps (a small MLP trained for 300 steps) on the swiss roll: scrub t."""
    schedule, data = _schedule(40), toy2d("swissroll", 2000, seed=0)
    model = TimeMLP(dim=2, hidden=64, depth=2)
    fit(model, EpsLoss(schedule), data, steps=300, batch_size=256, lr=3e-3, progress=False, seed=0)
    _, states = sample_ddpm(model, (500, 2), schedule, generator=torch.Generator().manual_seed(0), trajectory=True)
    return TimestepScrubber(schedule, data[:500], states)


@demo("guidance_slider", chapter=5, widget="GuidanceSlider")
def _guidance_slider():
    """A conditional MLP denoiser (T = 100) trained for 200 steps on 8x8 digits: slide the guidance w."""
    x, y = _digits()
    schedule = _schedule(100)
    model = TimeMLP(dim=64, hidden=128, depth=2, num_classes=10)
    fit(model, EpsLoss(schedule, p_uncond=0.2), (x.reshape(len(x), 64) * 2 - 1, y), steps=200, batch_size=128,
        lr=2e-3, progress=False, seed=0)
    labels = torch.arange(10)
    noise = torch.randn(10, 64, generator=torch.Generator().manual_seed(0))

    def sample_fn(w):
        out = sample_ddim(Guided(model, labels, w), (10, 64), schedule, 10, noise=noise, clip_x0=1.0)
        return out.reshape(10, 1, 8, 8)

    return GuidanceSlider(sample_fn, scales=(0.0, 4.0, 0.5), value=1.0, labels=labels.tolist(), nrow=10)


# ---- Chapter 6: autoregressive models ----
@demo("pixel_sampler", chapter=6, widget="PixelSampler", selects=(("mode", "complete this digit"),))
def _pixel_sampler():
    """A gated PixelCNN trained for 150 steps on binarized 8x8 digits: slide the step i, pick a mode."""
    x, _ = _digits()
    x = (x > 0.5).float()
    model = GatedPixelCNN(levels=2, channels=16, num_layers=3)
    fit(model, nll_loss, x[:500], steps=150, batch_size=64, lr=3e-3, progress=False, seed=0)
    return PixelSampler(model, (8, 8), given=x[505], seed=0)


# ---- Chapter 7: conditional and multimodal generation ----
@demo("caption_studio", chapter=7, widget="CaptionStudio", buttons=("generate",))
def _caption_studio():
    """Latent diffusion from a caption (an MLP autoencoder and a denoiser, ~5 s): slide w, press 'generate'."""
    # 28x28 MNIST, not the 8x8 digits: captions and the digit judge are defined on MNIST
    x, y = mnist("train")
    x, y = x[:3000], y[:3000]
    tokens = captions.tokenize(captions.captions(x, y))
    ae = MLPAE((1, 28, 28), code_dim=16, hidden=(256,))
    fit(ae, ae_loss, x, steps=300, batch_size=128, lr=3e-3, progress=False, seed=0)
    with torch.no_grad():
        z = ae.encode(x)
    mu, sd = z.mean(0), z.std(0)
    schedule = _schedule(100)
    model = CaptionDenoiser(code_dim=16, hidden=128, depth=2, emb_dim=32, text_layers=1, heads=4)
    fit(model, CaptionEpsLoss(schedule, p_word=0.1, p_caption=0.2), ((z - mu) / sd, tokens), steps=600,
        batch_size=128, lr=2e-3, progress=False, seed=0)

    def generate(caption, n, scale, seed):
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            codes = sample_ddim(CaptionGuided(model, caption, scale), (n, 16), schedule, 20, generator=gen)
            return ae.decode(codes * sd + mu).clamp(0.0, 1.0)

    return CaptionStudio(generate, n=8, scales=(0, 1, 2, 3, 5), scale=3, caption="a thick slanted seven")


# ---- Chapter 8: every family on one bench ----
def _blur(x):
    """A 3x3 box blur (zero padding): the blurry samples of a model that averages."""
    return torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)


def _mean_image_bpd(x, test):
    """Bits/dim of the binarized ``test`` digits under independent Bernoulli pixels with the mean
    image of ``x``: the exact likelihood of the simplest model a set of samples defines."""
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    b = (test > 0.5).float()
    nats = -(b * p.log() + (1 - b) * (1 - p).log()).sum((1, 2, 3)).mean()
    return float(nats / (p.numel() * math.log(2)))


@demo("bench_viewer", chapter=8, widget="BenchViewer",
      selects=(("family A", "blurred"), ("family B", "ones only")))
def _bench_viewer():
    """Real digits, copies and three corrupted "families" measured with dgm.metrics (~1 s): pick A and B."""
    from dgm.metrics import memorisation, sample_quality, sharpness

    n = 128
    x_train, _ = mnist("train")
    x_test, y_test = mnist("test")
    held_out, train = x_test[1000:], x_train[:2000]     # the families never use these test digits
    gen = torch.Generator().manual_seed(0)
    fresh = x_test[:1000][torch.randperm(1000, generator=gen)]
    makers = {
        "real (fresh)": lambda: fresh[:n],
        "copies of train": lambda: x_train[:n],
        "blurred": lambda: _blur(fresh[n:2 * n]),
        "noisy": lambda: (fresh[2 * n:3 * n] + 0.35 * torch.rand(n, 1, 28, 28, generator=gen)).clamp(0, 1),
        "ones only": lambda: x_test[:1000][y_test[:1000] == 1][:n],
    }
    rows, samples = {}, {}
    for name, make in makers.items():
        start = time.perf_counter()
        x = make()
        seconds = time.perf_counter() - start
        quality = sample_quality(x, x_train, k=3)
        copies = name == "copies of train"          # a lookup table: no density for unseen digits
        rows[name] = {
            "bpd": None if copies else _mean_image_bpd(x, held_out),
            "bpd_kind": None if copies else "exact",
            "fid": quality["fid"], "kid": quality["kid"], "precision": quality["precision"],
            "recall": quality["recall"], "memorisation": memorisation(x, train, held_out)["ratio"],
            "sharpness": sharpness(x).mean().item(), "train_s": 0.0, "steps": 0, "ms_per_sample": 1000 * seconds / n,
        }
        samples[name] = x
    real = x_test[1000:1000 + n]
    quality = sample_quality(real, x_train, k=3, seed=1)
    floor = {"fid": quality["fid"], "kid": quality["kid"], "precision": quality["precision"],
             "recall": quality["recall"], "memorisation": memorisation(real, train, x_test[:1000])["ratio"],
             "sharpness": sharpness(real).mean().item()}
    return BenchViewer(rows, samples, floor, n_show=32, first="real (fresh)", second="copies of train")


# ----------------------------------------------------------------------------- serving with Voila
#: The JupyterLab extensions Voila loads for the demos: Voila's widget manager (ipywidgets 8),
#: the ipywidgets controls and ipympl. The others installed in the environment (nbgrader,
#: jupytext, ...) are for JupyterLab only and fail to activate in Voila.
VOILA_EXTENSIONS = (
    "@voila-dashboards/widgets-manager8",
    "@jupyter-widgets/jupyterlab-manager",
    "jupyter-matplotlib",
)


def _voila_lab_template() -> Path:
    """Voila's own ``lab/index.html.j2`` (the template ours extends)."""
    for folder in jupyter_path("voila", "templates", "lab"):
        if (Path(folder) / "index.html.j2").is_file():
            return Path(folder) / "index.html.j2"
    raise FileNotFoundError("Voila's lab template was not found (is voila installed?)")


def write_voila_template(root) -> Path:
    """Write the offline Voila template ``dgm`` under ``root/voila/templates/dgm``.

    It is Voila's "lab" template less the stylesheets it loads from a CDN (Font Awesome, which
    the demos do not use), so a demo page loads nothing from another host, as
    tests/test_browser.py checks. Voila finds it when ``root`` is on ``JUPYTER_PATH`` (see
    :func:`voila_command`). Returns the template's folder.
    """
    cdn_links = [
        line.strip() for line in _voila_lab_template().read_text().splitlines()
        if line.strip().startswith("<link") and "://" in line
    ]
    if any("'" in link for link in cdn_links):
        raise ValueError(f"cannot quote {cdn_links} in a Jinja string")
    strip = "".join(f"\n   | replace('{link}', '')" for link in cdn_links)
    folder = Path(root) / "voila" / "templates" / "dgm"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conf.json").write_text(json.dumps({"base_template": "lab"}) + "\n")
    (folder / "index.html.j2").write_text(
        "{%- extends 'voila/templates/lab/index.html.j2' -%}\n"
        "{%- block notebook_css -%}\n"
        f"{{{{ super(){strip} }}}}\n"
        "{%- endblock notebook_css -%}\n"
    )
    return folder


def voila_command(folder, port: int, template_root) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment that serve ``folder``'s notebooks with Voila.

    Voila listens on 127.0.0.1:``port`` only, renders with the offline template written by
    :func:`write_voila_template` into ``template_root``, loads only :data:`VOILA_EXTENSIONS`,
    shows tracebacks (so a failing demo is visible, and caught by the tests), and its kernels
    use one thread and find this module (``PYTHONPATH`` starts with :data:`DEMOS_DIR`). Notebook
    ``NAME.ipynb`` is then at ``/voila/render/NAME.ipynb``.
    """
    write_voila_template(template_root)
    cmd = [
        sys.executable, "-m", "voila", str(folder), "--no-browser", f"--port={int(port)}",
        "--Voila.ip=127.0.0.1", "--template=dgm", "--VoilaConfiguration.show_tracebacks=True",
        *(f"--VoilaConfiguration.extension_allowlist={name}" for name in VOILA_EXTENSIONS),
    ]
    paths = [str(Path(template_root).resolve())]
    if os.environ.get("JUPYTER_PATH"):
        paths.append(os.environ["JUPYTER_PATH"])
    pythonpath = [str(DEMOS_DIR)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = {"JUPYTER_PATH": os.pathsep.join(paths), "PYTHONPATH": os.pathsep.join(pythonpath),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return cmd, env


# ----------------------------------------------------------------------------- command line
def _serve(folder: Path, port: int) -> int:
    cmd, env = voila_command(folder, port, folder / ".voila")
    print(f"Voila on http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    return subprocess.call(cmd, env={**os.environ, **env})


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python demos/widget_demos.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the registered demos")
    w = sub.add_parser("write", help="write one notebook per demo into a folder")
    w.add_argument("folder", type=Path)
    s = sub.add_parser("serve", help="write the notebooks into a folder and serve them with Voila on 127.0.0.1")
    s.add_argument("--folder", type=Path, default=Path(".jupyter/demos"))
    s.add_argument("--port", type=int, default=8866)
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for d in DEMOS.values():
            print(f"{d.name:24s} chapter {d.chapter}  {d.widget:18s} {d.title}")
        return 0
    if args.cmd == "write":
        for path in write_notebooks(args.folder):
            print(path)
        return 0
    write_notebooks(args.folder)
    return _serve(args.folder, args.port)


if __name__ == "__main__":
    sys.exit(_main())
