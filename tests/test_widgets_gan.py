"""Tests for the chapter-3 widgets in dgm.widgets: the GAN latent explorer and the 2-D GAN playground
react to every control (pictures checked against the generator called directly, surfaces against
dgm.gan.decision_surface), and the static twin has one frame per snapshot."""

import io

import ipywidgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from IPython.display import HTML  # noqa: E402
from PIL import Image as PILImage  # noqa: E402

import dgm.data  # noqa: E402
from dgm.gan import DCGANGenerator, GANTrainer, MLPDiscriminator, MLPGenerator, decision_surface  # noqa: E402
from dgm.widgets import (  # noqa: E402
    GANLatentExplorer,
    GANPlayground,
    as_html,
    draw_gan_state,
    gan_snapshot,
    gan_training_animation,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _png_size(data: bytes):
    img = PILImage.open(io.BytesIO(data))
    assert img.format == "PNG"
    return img.size


def _direct(generator, z, y=None):
    generator.eval()
    with torch.no_grad():
        return generator(z[None]) if y is None else generator(z[None], torch.tensor([y]))


# ----------------------------------------------------------------------------- latent explorer
@pytest.fixture
def explorer():
    torch.manual_seed(0)
    return GANLatentExplorer(DCGANGenerator(latent_dim=6, channels=(4, 4)), n_sliders=4, seed=1)


def test_explorer_structure(explorer):
    assert isinstance(explorer.widget, ipywidgets.VBox)
    assert len(explorer.sliders) == 4 and explorer.dims == [0, 1, 2, 3]
    assert explorer.label is None
    width, height = _png_size(explorer.image.value)
    assert width > 2.5 * height  # three panels side by side
    torch.testing.assert_close(explorer.code(), explorer.z_a)
    torch.testing.assert_close(explorer.picture(), _direct(explorer.generator, explorer.z_a)[0])


def test_explorer_slider_changes_the_picture(explorer):
    before = explorer.image.value
    explorer.sliders[2].value = 2.5
    assert explorer.image.value != before
    z = explorer.code()
    assert abs(z[2].item() - 2.5) < 1e-6
    torch.testing.assert_close(explorer.picture(), _direct(explorer.generator, z)[0])


def test_explorer_interpolation_and_buttons(explorer):
    before = explorer.image.value
    explorer.t.value = 0.5
    assert explorer.image.value != before
    torch.testing.assert_close(explorer.code(), 0.5 * explorer.z_a + 0.5 * explorer.z_b)
    old_b = explorer.z_b.clone()
    before = explorer.image.value
    explorer.new_b.click()
    assert not torch.equal(explorer.z_b, old_b)
    torch.testing.assert_close(explorer.code(), explorer.z_b)
    assert explorer.t.value == 1.0 and explorer.image.value != before
    before = explorer.image.value
    explorer.new_a.click()
    torch.testing.assert_close(explorer.code(), explorer.z_a)
    assert explorer.image.value != before
    with pytest.raises(ValueError, match="which"):
        explorer.resample("c")


def test_explorer_label_menu_for_a_conditional_generator():
    torch.manual_seed(0)
    gen = DCGANGenerator(latent_dim=4, channels=(4, 4), num_classes=10)
    ex = GANLatentExplorer(gen, seed=0)
    assert isinstance(ex.label, ipywidgets.Dropdown) and len(ex.sliders) == 4
    before = ex.image.value
    ex.label.value = 7
    assert ex.image.value != before
    torch.testing.assert_close(ex.picture(), _direct(gen, ex.code(), 7)[0])


def test_explorer_rejects_bad_arguments():
    with pytest.raises(TypeError, match="generator"):
        GANLatentExplorer(lambda z: z)
    with pytest.raises(ValueError, match="dims"):
        GANLatentExplorer(DCGANGenerator(latent_dim=3, channels=(4, 4)), dims=[0, 5])


# ----------------------------------------------------------------------------- playground
@pytest.fixture
def playground():
    data = dgm.data.toy2d("ring8", 500, seed=0)
    return GANPlayground(data, hidden=(8, 8), batch_size=32, n_steps=10, seed=0)


def test_playground_run_button_trains_and_redraws(playground):
    assert playground.trainer.steps == 0
    width, height = _png_size(playground.image.value)
    assert width > height
    before_png, before_samples = playground.image.value, playground.samples()
    playground.run.click()
    assert playground.trainer.steps == 10
    assert playground.image.value != before_png
    assert not torch.allclose(playground.samples(), before_samples)
    assert "step 10" in playground.status.value
    playground.run_steps(5)
    assert playground.trainer.steps == 15 and len(playground.trainer.history.d_loss) == 15


def test_playground_controls(playground):
    playground.run_steps(5)
    before = playground.image.value
    assert playground.trainer.opt_g.param_groups[0]["betas"] == (0.5, 0.999)
    playground.loss.value = "wgan-gp"  # a new game restarts from the initial networks
    assert playground.trainer.loss == "wgan-gp" and playground.trainer.steps == 0
    # WGAN-GP plays lecture 3's 2-D recipe: lambda = 0.1, Adam betas (0.5, 0.9)
    assert playground.trainer.gp_weight == pytest.approx(0.1)
    assert playground.trainer.opt_d.param_groups[0]["betas"] == (0.5, 0.9)
    assert playground.image.value != before
    playground.k.value = 3
    assert playground.trainer.k == 3
    playground.lr_g.value = 1e-3
    playground.lr_d.value = 3e-3
    assert playground.trainer.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert playground.trainer.opt_d.param_groups[0]["lr"] == pytest.approx(3e-3)
    playground.run_steps(2)
    # k = 3 critic steps per generator step
    d_param = next(iter(playground.trainer.discriminator.parameters()))
    assert playground.trainer.opt_d.state[d_param]["step"] == 6
    # the surface is the critic's score on the grid
    ref = decision_surface(playground.trainer.discriminator, playground.extent, n=16, kind="logit")
    torch.testing.assert_close(playground.surface(grid=16), ref)
    before = playground.image.value
    playground.reset.click()
    assert playground.trainer.steps == 0 and playground.image.value != before


def test_playground_restart_is_reproducible(playground):
    playground.run_steps(5)
    first = playground.samples()
    playground.reset.click()
    playground.run_steps(5)
    torch.testing.assert_close(playground.samples(), first)


def test_playground_rejects_bad_arguments():
    data = torch.zeros(10, 2)
    with pytest.raises(ValueError, match="loss"):
        GANPlayground(data, loss="wgan")
    with pytest.raises(ValueError, match="data"):
        GANPlayground(torch.zeros(10, 3))


# ----------------------------------------------------------------------------- static twin
def test_training_animation_has_one_frame_per_snapshot():
    torch.manual_seed(0)
    data = dgm.data.toy2d("ring8", 300, seed=0)
    runs = {}
    for loss in ("nonsaturating", "wgan-gp"):
        trainer = GANTrainer(MLPGenerator(2, 2, hidden=(8,)), MLPDiscriminator(2, hidden=(8,)), data, loss=loss,
                             batch_size=16, seed=0)
        kind = "logit" if loss == "wgan-gp" else "prob"
        hist = trainer.train(6, snapshot_every=2, snapshot_fn=gan_snapshot((-3, 3, -3, 3), n=50, grid=8, kind=kind))
        runs[loss] = hist.snapshots
    assert [s for s, _ in runs["wgan-gp"]] == [0, 2, 4, 6]
    snap = runs["nonsaturating"][1][1]
    assert snap["samples"].shape == (50, 2) and snap["surface"].shape == (8, 8)
    assert float(snap["surface"].min()) >= 0 and float(snap["surface"].max()) <= 1
    anim = gan_training_animation(runs, data, kinds={"wgan-gp": "logit"})
    html = as_html(anim)
    assert isinstance(html, HTML)
    assert html.data.count("frames[") >= 4 or html.data.count("data:image/png") >= 4
    with pytest.raises(ValueError, match="same non-zero number"):
        gan_training_animation({"a": runs["wgan-gp"], "b": runs["wgan-gp"][:2]}, data)


def test_draw_gan_state_draws_the_given_points():
    fig, ax = plt.subplots()
    fake = torch.tensor([[0.5, -0.5], [1.0, 1.0]])
    image, scatter = draw_gan_state(ax, torch.zeros(3, 2), fake, np.full((4, 4), 0.5), (-2, 2, -2, 2))
    np.testing.assert_allclose(scatter.get_offsets(), fake.numpy())
    assert image.get_array().shape == (4, 4)
    plt.close(fig)


def test_training_animation_draws_each_runs_own_data_and_wraps_rows():
    ring = dgm.data.toy2d("ring8", 200, seed=0)
    grid = dgm.data.toy2d("grid25", 200, seed=0)
    snaps = [(s, {"samples": torch.randn(30, 2, generator=torch.Generator().manual_seed(s)),
                  "surface": np.full((6, 6), 0.5)}) for s in (0, 5)]
    runs = {"a, ring8": snaps, "b, grid25": snaps, "c, ring8": snaps}
    real = {"a, ring8": ring, "b, grid25": grid, "c, ring8": ring}
    anim = gan_training_animation(runs, real, ncols=2, panel_size=2.0, dpi=50)
    anim._draw_was_started = True                              # no 'deleted without rendering' warning
    fig = anim._fig
    try:
        axes = fig.axes
        assert len(axes) == 4 and not axes[3].axison         # 3 panels on a 2 x 2 grid, one blank
        assert fig.get_size_inches()[0] == pytest.approx(4.0)
        for ax, name in zip(axes, runs):
            data_points = ax.collections[0].get_offsets()      # black: the run's own training data
            np.testing.assert_allclose(data_points, real[name].numpy(), atol=1e-6)
        anim._func(1)                                          # frame 1 moves the samples only
        np.testing.assert_allclose(axes[1].collections[0].get_offsets(), grid.numpy(), atol=1e-6)
        np.testing.assert_allclose(axes[1].collections[1].get_offsets(), snaps[1][1]["samples"].numpy(), atol=1e-6)
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="one entry per run"):
        gan_training_animation(runs, {"a, ring8": ring}, ncols=2)
    with pytest.raises(ValueError, match="ncols"):
        gan_training_animation(runs, ring, ncols=0)
