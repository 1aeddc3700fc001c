"""The grading round trip with the real nbgrader CLI and `make grade`.

For every assignment: the committed release is not stale, hidden tests are absent from it and
restored at grading, the solution scores full marks, the untouched release scores 0, and a planted
half-solution scores exactly the points of the tests its solved parts earn. Planted classic bugs
(PLANTED) are graded in the same run and lose exactly the points of the tests they break. Expected
scores are read from the solution's nbgrader metadata, never from nbgrader's own results.
"""

import copy
import csv
import hashlib
import os
import re
import subprocess
import sys

import nbformat
import pytest

from conftest import REPO
from dgm import course

# For each assignment: the solution cells a "half" student fills in, and the test cells that earns.
HALF = {
    "01_autoencoders": (
        {"reconstruction_error", "mask_corrupt"},
        {"test_reconstruction_error", "test_mask_corrupt"},
    ),
    "02_vae_elbo": (
        {"gaussian_kl", "reparameterize"},
        {"test_gaussian_kl", "test_reparameterize"},
    ),
    "03_gan_game": (
        {"discriminator_loss", "generator_loss"},
        {"test_discriminator_loss", "test_generator_loss"},
    ),
    "04_normalizing_flows": (
        {"log_density_1d", "dequantize"},
        {"test_log_density_1d", "test_dequantize"},
    ),
    "05_diffusion": (
        {"linear_schedule", "q_sample"},
        {"test_linear_schedule", "test_q_sample"},
    ),
    "06_autoregressive": (
        {"causal_mask", "log_likelihood"},
        {"test_causal_mask", "test_log_likelihood"},
    ),
    "07_multimodal": (
        {"measure", "classifier_guided_score"},
        {"test_measure", "test_classifier_guided_score"},
    ),
    "08_capstone": (
        {"fid", "precision_recall"},
        {"test_fid", "test_precision_recall"},
    ),
}

# Planted classic bugs, graded in the same `make grade` run as the honest students:
# {assignment: {bug: ({answer grade_id: (text of the solution's answer, its buggy replacement)},
#                     test cells that must fail)}}.
# The student "planted_<bug>" submits the whole solution with those edits; it must score the
# automatic total minus exactly the points of the listed tests. A bug breaks the tests of its own
# part, plus those of a later part that uses it (a leaky mask makes part D's PixelCNN leaky).
PLANTED = {
    "01_autoencoders": {
        # gradients accumulate over the steps: the denoiser stalls near the baselines
        "no_zero_grad": (
            {"train_denoiser": ("        optimizer.zero_grad()\n", "")},
            {"test_train_denoiser"},
        ),
        # the corrupted x_tilde as the target: it learns to copy its masked input
        "target_is_corrupted": (
            {"train_denoiser": ("reconstruction_error(x, model(x_tilde))", "reconstruction_error(x_tilde, model(x_tilde))")},
            {"test_train_denoiser"},
        ),
        # no corruption: a plain autoencoder, lost on masked digits
        "no_corruption": (
            {"train_denoiser": ("x_tilde = mask_corrupt(x, p, generator)", "x_tilde = x")},
            {"test_train_denoiser"},
        ),
        # gradient ascent on the reconstruction error
        "wrong_sign_loss": (
            {"train_denoiser": ("loss = reconstruction_error(", "loss = -reconstruction_error(")},
            {"test_train_denoiser"},
        ),
        # output_padding 1 on every axis: right for even sizes only (the visible 8x8, 28x28)
        "output_padding_always_one": (
            {"conv_autoencoder": ("return 1 - n % 2", "return 1")},
            {"test_conv_autoencoder"},
        ),
        # the last layer's output_padding taken from the height on both axes: square images only
        "output_padding_from_height": (
            {"conv_autoencoder": ("(out_pad(height), out_pad(width))", "(out_pad(height), out_pad(height))")},
            {"test_conv_autoencoder"},
        ),
    },
    "02_vae_elbo": {
        # gradients accumulate over the steps: a test ELBO of -30 nats or worse, not -18.8
        "no_zero_grad": (
            {"train_vae": ("        optimizer.zero_grad()\n", "")},
            {"test_train_vae"},
        ),
        # gradient ascent on the negative ELBO: the KL explodes, the ELBO with it
        "wrong_sign_loss": (
            {"train_vae": ("loss = (reconstruction + kl) / len(x)", "loss = -(reconstruction + kl) / len(x)")},
            {"test_train_vae"},
        ),
        # the reconstruction averaged over the pixels (and the batch) instead of summed: the KL
        # weighs thousands of times too much, the posterior collapses onto the prior (KL 0), and
        # the model is no better than independent pixels (-25 nats)
        "reconstruction_mean": (
            {"train_vae": ('logits, x, reduction="sum")', "logits, x)")},
            {"test_train_vae"},
        ),
        # exp(logvar) used as the standard deviation in the reparameterisation: the model is
        # trained with a q it does not report, and its ELBO under the reported q is -25 nats
        "exp_logvar_as_std": (
            {"train_vae": ("z = mu + torch.exp(0.5 * logvar) * eps", "z = mu + torch.exp(logvar) * eps")},
            {"test_train_vae"},
        ),
        # the KL with the wrong sign: the loss rewards moving q away from the prior
        "kl_wrong_sign": (
            {"train_vae": ("kl = 0.5 * (mu**2", "kl = -0.5 * (mu**2")},
            {"test_train_vae"},
        ),
        # the straight-through value without its stop-gradient: z_q = e_k, so the decoder's
        # gradient goes to the codebook and none reaches the encoder
        "st_gradient_to_codebook": (
            {"vector_quantize": ("z_q_st = z_e + (z_q - z_e).detach()", "z_q_st = z_q")},
            {"test_vector_quantize"},
        ),
        # the codebook loss with the commitment loss's stop-gradient: right values, gradients to
        # the encoder instead of the codes (hidden)
        "stop_gradients_swapped": (
            {"vector_quantize": ("codebook_loss = ((z_e.detach() - z_q) ** 2).sum(-1)",
                                 "codebook_loss = ((z_e - z_q.detach()) ** 2).sum(-1)")},
            {"test_vector_quantize"},
        ),
        # ||z - e||^2 without the ||e||^2 term: the code with the largest dot product, not the
        # nearest
        "nearest_without_code_norm": (
            {"vector_quantize": (" - 2 * flat @ e.T + (e**2).sum(1)", " - 2 * flat @ e.T")},
            {"test_vector_quantize"},
        ),
    },
    "03_gan_game": {
        # the discriminator never clears its gradients: they pile up over the steps and the
        # game never settles on the grader's ring
        "no_zero_grad_discriminator": (
            {"train_gan": ("        opt_d.zero_grad()\n", "")},
            {"test_train_gan"},
        ),
        # the generator's samples detached in its own step: G never learns
        "generator_step_detached": (
            {"train_gan": ("loss_g = generator_loss(D(G(z)),", "loss_g = generator_loss(D(G(z).detach()),")},
            {"test_train_gan"},
        ),
        # the generator ascends its own loss: it runs away from what D calls real
        "wrong_sign_generator_loss": (
            {"train_gan": ("loss_g = generator_loss(", "loss_g = -generator_loss(")},
            {"test_train_gan"},
        ),
        # the discriminator trained with the real and generated labels swapped
        "labels_swapped": (
            {"train_gan": ("discriminator_loss(D(x), D(fake))", "discriminator_loss(D(fake), D(x))")},
            {"test_train_gan"},
        ),
        # MNIST's padding for every size: right when each step doubles (28, 8), wrong for odd
        # sizes (hidden)
        "padding_for_even_sizes_only": (
            {"dcgan_generator": ("padding=padding, output_padding=output_padding", "padding=1, output_padding=0")},
            {"test_dcgan_generator"},
        ),
        # the half size rounded down: 28 and 8 unchanged, odd sizes go 4 -> 9 instead of 5 -> 9
        "half_size_floored": (
            {"dcgan_generator": ("s1 = (size + 1) // 2", "s1 = size // 2")},
            {"test_dcgan_generator"},
        ),
    },
    "04_normalizing_flows": {
        # gradients accumulate over the steps: the flow does worse than a single Gaussian
        "no_zero_grad": (
            {"train_flow": ("        optimizer.zero_grad()\n", "")},
            {"test_train_flow"},
        ),
        # gradient ascent on the negative log-likelihood: the likelihood is minimised
        "wrong_sign_loss": (
            {"train_flow": ("loss = -flow_log_prob(", "loss = flow_log_prob(")},
            {"test_train_flow"},
        ),
        # every layer keeps x_0 and transforms x_1: x_0's marginal stays the base's Gaussian
        "masks_not_alternating": (
            {"train_flow": ("[1.0, 0.0] if k % 2 == 0 else [0.0, 1.0]", "[1.0, 0.0]")},
            {"test_train_flow"},
        ),
        # the standardization's log-det left out: not a density in x's coordinates
        "standardization_log_det_dropped": (
            {"train_flow": (" - torch.log(std).sum()", "")},
            {"test_train_flow"},
        ),
        # the layers' log-dets dropped from log p (part C): wrong, and part F's flow with it
        "flow_log_det_dropped": (
            {"flow_log_prob": ("total = total + log_det", "total = total")},
            {"test_flow_log_prob", "test_train_flow"},
        ),
        # ActNorm's forward log-det counts each channel's scale once, not once per pixel
        "actnorm_log_det_not_per_pixel": (
            {"actnorm": ("pixels = x[0, 0].numel()", "pixels = 1")},
            {"test_actnorm"},
        ),
        # the data-dependent initialization pools all channels together
        "actnorm_init_all_channels": (
            {"actnorm": ("y.transpose(0, 1).reshape(y.shape[1], -1)", "y.reshape(1, -1)")},
            {"test_actnorm"},
        ),
        # initializes again on every call of inverse: a batch normalization, not ActNorm (hidden)
        "actnorm_reinit_every_call": (
            {"actnorm": ("if not bool(self.initialized):", "if True:")},
            {"test_actnorm"},
        ),
    },
    "05_diffusion": {
        # gradients accumulate over the steps: the training diverges, the samples are not finite
        "no_zero_grad": (
            {"train_diffusion": ("        optimizer.zero_grad()\n", "")},
            {"test_train_diffusion"},
        ),
        # gradient ascent on the noise-prediction loss
        "wrong_sign_loss": (
            {"train_diffusion": ("loss = (eps_model(xt, t) - noise).pow(2).mean()",
                                 "loss = -(eps_model(xt, t) - noise).pow(2).mean()")},
            {"test_train_diffusion"},
        ),
        # the clean x_0 as the regression target: the sampler reads it as noise, samples far off
        "x0_as_target": (
            {"train_diffusion": ("(eps_model(xt, t) - noise)", "(eps_model(xt, t) - x0)")},
            {"test_train_diffusion"},
        ),
        # DDIM's predicted-noise term keeps its full variance 1 - abar_s although sigma z is
        # added: right for eta = 0 (visible), too much noise for eta > 0 (hidden)
        "ddim_eps_coef_ignores_sigma": (
            {"ddim_step": ("max(1 - ab_prev - sigma**2, 0.0)", "max(1 - ab_prev, 0.0)")},
            {"test_ddim_step"},
        ),
        # off by one in the new cell: abar of the earlier step read at t_prev - 1
        "ddim_prev_off_by_one": (
            {"ddim_step": ("float(alpha_bars[t_prev]) if t_prev >= 0 else 1.0",
                           "float(alpha_bars[t_prev - 1]) if t_prev >= 1 else 1.0")},
            {"test_ddim_step"},
        ),
    },
    "06_autoregressive": {
        # the PixelCNN's first layer sees the pixel it predicts: a great NLL, not causal
        "first_layer_type_b": (
            {"train_pixelcnn": ('MaskedConv2d(1, channels, 5, "A")', 'MaskedConv2d(1, channels, 5, "B")')},
            {"test_train_pixelcnn"},
        ),
        # gradients accumulate over the steps: about 1 bit/dim instead of 0.42
        "no_zero_grad": (
            {"train_pixelcnn": ("        optimizer.zero_grad()\n", "")},
            {"test_train_pixelcnn"},
        ),
        # gradient ascent on the negative log-likelihood
        "wrong_sign_loss": (
            {"train_pixelcnn": ("loss = F.cross_entropy(", "loss = -F.cross_entropy(")},
            {"test_train_pixelcnn"},
        ),
        # type A keeps the centre: wrong mask, and the PixelCNN built from it leaks x_i
        "type_a_keeps_centre": (
            {"causal_mask": ('if mask_type == "B":', 'if mask_type in ("A", "B"):')},
            {"test_causal_mask", "test_train_pixelcnn"},
        ),
        # the centre column taken from the kernel's height: right for square kernels only (the
        # hidden tests' rectangular ones catch it; part D's square kernels do not use it)
        "mask_centre_from_height": (
            {"causal_mask": ("mask[kh // 2, : kw // 2] = 1.0", "mask[kh // 2, : kh // 2] = 1.0")},
            {"test_causal_mask"},
        ),
        # log(softmax): right on the visible example, -inf for confident logits (hidden test)
        "log_of_softmax": (
            {"log_likelihood": ("F.log_softmax(logits, dim=1)", "torch.log(torch.softmax(logits, dim=1))")},
            {"test_log_likelihood"},
        ),
    },
    "07_multimodal": {
        # rows counted upward: every slant has the wrong sign (the visible sheared bar catches it)
        "slant_rows_upward": (
            {"measure": ("-cov / var.clamp(min=1e-12)", "cov / var.clamp(min=1e-12)")},
            {"test_measure"},
        ),
        # a pixel of exactly 0.5 counted as ink: right on the visible shapes, wrong on real digits
        "ink_at_half": (
            {"measure": ("ink = (g > 0.5).double()", "ink = (g >= 0.5).double()")},
            {"test_measure"},
        ),
        # guidance pushes away from the condition
        "guidance_wrong_sign": (
            {"classifier_guided_score": ("return prior_score + gamma *", "return prior_score - gamma *")},
            {"test_classifier_guided_score"},
        ),
        # the posterior p(k | x) without the mixture weights: right for equal weights only (hidden)
        "posterior_without_weights": (
            {"classifier_guided_score": ("torch.log(weights.to(x.dtype))", "0.0")},
            {"test_classifier_guided_score"},
        ),
        # classifier-free guidance with the conditional and the null branch swapped
        "cfg_branches_swapped": (
            {"guided_eps": ("eps_c, eps_null = eps[:n], eps[n:]", "eps_null, eps_c = eps[:n], eps[n:]")},
            {"test_guided_eps"},
        ),
        # a per-example scale w (N,) broadcast against the last axis of x, not the batch (hidden)
        "cfg_scale_not_per_example": (
            {"guided_eps": ("w = w.reshape(n, *[1] * (x.dim() - 1))", "pass")},
            {"test_guided_eps"},
        ),
        # gradients accumulate over the steps: the CVAE learns neither digits nor attributes
        "no_zero_grad": (
            {"train_generator": ("        optimizer.zero_grad()\n", "")},
            {"test_train_generator"},
        ),
        # trained with the condition zeroed: its samples ignore the caption
        "ignores_condition": (
            {"train_generator": ("x, c = flat[i], C[i]", "x, c = flat[i], 0 * C[i]")},
            {"test_train_generator"},
        ),
    },
    "08_capstone": {
        # the trace of the covariance product instead of the trace of its square root: not 0 for
        # identical sets; part D's FIDs are wrong too
        "fid_without_root": (
            {"fid": ("eigenvalues.clamp(min=0).sqrt().sum()", "eigenvalues.clamp(min=0).sum()")},
            {"test_fid", "test_experiment"},
        ),
        # covariances divided by N instead of N - 1 (numpy.var's default): off by (N-1)/N
        "biased_covariance": (
            {"fid": ("/ (len(f) - 1)", "/ len(f)")},
            {"test_fid", "test_experiment"},
        ),
        # the distance of the means, not its square
        "mean_distance_not_squared": (
            {"fid": ("((mu1 - mu2) ** 2).sum()", "(mu1 - mu2).norm()")},
            {"test_fid", "test_experiment"},
        ),
        # no clamp before the square root: right for full-rank covariances (part D), NaN for a
        # singular one (hidden: fewer vectors than dimensions)
        "nan_for_singular": (
            {"fid": ("eigenvalues.clamp(min=0).sqrt()", "eigenvalues.sqrt()")},
            {"test_fid"},
        ),
        # the radius counts the point itself as its first neighbour: the (k-1)-th neighbour
        "radius_counts_itself": (
            {"precision_recall": ("kthvalue(k + 1, dim=1)", "kthvalue(k, dim=1)")},
            {"test_precision_recall", "test_experiment"},
        ),
        # precision and recall swapped
        "precision_recall_swapped": (
            {"precision_recall": ("return coverage(fake, real), coverage(real, fake)",
                                  "return coverage(real, fake), coverage(fake, real)")},
            {"test_precision_recall", "test_experiment"},
        ),
        # gradients accumulate over the steps: the VAE learns no digits
        "no_zero_grad": (
            {"train_generator": ("        optimizer.zero_grad()\n", "")},
            {"test_train_generator"},
        ),
        # gradient ascent on the negative ELBO
        "wrong_sign_loss": (
            {"train_generator": ("loss = (reconstruction + kl) / len(x)", "loss = -(reconstruction + kl) / len(x)")},
            {"test_train_generator"},
        ),
        # the KL term forgotten: an autoencoder whose latents are not N(0, I), so decoding the prior
        # gives few and odd digits (low precision and recall)
        "no_kl": (
            {"train_generator": ("loss = (reconstruction + kl) / len(x)", "loss = reconstruction / len(x)")},
            {"test_train_generator"},
        ),
        # "the collapsed model is the more precise one": right on P and Q, wrong on the hidden
        # pairs whose collapsed model is also noisy
        "collapsed_by_precision": (
            {"experiment": ('collapsed = min(numbers, key=lambda name: numbers[name]["recall"])',
                            'collapsed = max(numbers, key=lambda name: numbers[name]["precision"])')},
            {"test_experiment"},
        ),
        # the memorisation ratio upside down (test over train distances)
        "ratio_inverted": (
            {"experiment": ("np.median(near_train.values.numpy()) / np.median(near_test.values.numpy())",
                            "np.median(near_test.values.numpy()) / np.median(near_train.values.numpy())")},
            {"test_experiment"},
        ),
    },
}
NAMES = course.assignment_names()


def _cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def _points(nb, ids=None):
    return sum(m.metadata["nbgrader"].get("points", 0) for gid, m in _cells(nb).items()
               if m.metadata["nbgrader"].get("grade") and (ids is None or gid in ids))


def _auto_ids(nb):
    return {gid for gid, c in _cells(nb).items()
            if c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")}


def _manual_ids(nb):
    return {gid for gid, c in _cells(nb).items()
            if c.metadata["nbgrader"].get("grade") and c.metadata["nbgrader"].get("solution")}


def _hidden_blocks(nb):
    blocks = []
    for cell in nb.cells:
        blocks += re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", cell.source, flags=re.S)
    return [b.strip() for b in blocks]


def _fill(release, source, solve):
    """A submission: the release with the solution cells in `solve` answered as in the solution."""
    nb = copy.deepcopy(release)
    answers = _cells(source)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and meta["grade_id"] in solve:
            cell.source = answers[meta["grade_id"]].source
    return nb


def _plant(release, source, edits):
    """The whole solution with the answer cells in `edits` rewritten: {grade_id: (old, new)}."""
    nb = _fill(release, source, {gid for gid, c in _cells(source).items() if c.metadata["nbgrader"].get("solution")})
    cells = _cells(nb)
    for gid, (old, new) in edits.items():
        assert cells[gid].source.count(old) == 1, f"planted bug: {old!r} is not once in the answer {gid}"
        cells[gid].source = cells[gid].source.replace(old, new)
    return nb


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _nbgrader(*args, env):
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, check=True)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    release_dir = tmp_path_factory.mktemp("release")
    # three students at once on CI's two cores: a kernel starting or a feedback page being written
    # leaves a core idle (the hidden tests' limits allow it: tests/test_hostile.py grades with JOBS=3 too)
    env = {**os.environ, "DGM_GRADING_ROOT": str(root), "JOBS": "3"}
    old = os.environ.get("DGM_GRADING_ROOT")
    os.environ["DGM_GRADING_ROOT"] = str(root)
    try:
        course.generate_assignments(release_to=release_dir)
    finally:
        if old is None:
            os.environ.pop("DGM_GRADING_ROOT")
        else:
            os.environ["DGM_GRADING_ROOT"] = old
    sources = {n: course.to_notebook(REPO / "solutions" / n / f"{n}.md") for n in NAMES}
    releases = {n: nbformat.read(release_dir / n / f"{n}.ipynb", as_version=4) for n in NAMES}
    for n in NAMES:
        solve_half, _ = HALF[n]
        all_solutions = {gid for gid, c in _cells(sources[n]).items() if c.metadata["nbgrader"].get("solution")}
        for student, solve in [("solved", all_solutions), ("blank", set()), ("half", solve_half)]:
            folder = root / "submitted" / student / n
            folder.mkdir(parents=True)
            nbformat.write(_fill(releases[n], sources[n], solve), folder / f"{n}.ipynb")
        for bug, (edits, _) in PLANTED.get(n, {}).items():
            folder = root / "submitted" / f"planted_{bug}" / n
            folder.mkdir(parents=True)
            nbformat.write(_plant(releases[n], sources[n], edits), folder / f"{n}.ipynb")
    before = _digest(root / "submitted")
    result = subprocess.run(["make", "grade"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    with open(root / "grades.csv", newline="") as f:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}
    return dict(root=root, env=env, release_dir=release_dir, sources=sources, releases=releases,
                rows=rows, before=before, stdout=result.stdout)


@pytest.mark.parametrize("name", NAMES)
def test_committed_release_is_not_stale(graded, name):
    committed = REPO / "assignments" / name / f"{name}.ipynb"
    assert committed.is_file(), f"run `make assignments` and commit {committed}"
    fresh = graded["release_dir"] / name / f"{name}.ipynb"
    assert committed.read_text() == fresh.read_text(), f"{committed} is stale: run `make assignments`"


@pytest.mark.parametrize("name", NAMES)
def test_assignment_shape(graded, name):
    source = graded["sources"][name]
    assert len(_auto_ids(source)) >= 4, "at least 4 auto-graded parts"
    assert _manual_ids(source), "at least one manually graded answer"
    total = _points(source)
    intro = "\n".join(c.source for c in source.cells[:3])
    assert re.search(rf"\b{total:g}\s+points\b", intro), f"the introduction must state the total ({total} points)"
    for gid in _auto_ids(source):
        assert "### BEGIN HIDDEN TESTS" in _cells(source)[gid].source, f"{gid} has no hidden tests"


@pytest.mark.parametrize("name", NAMES)
def test_hidden_tests_absent_from_release_and_restored_at_grading(graded, name):
    hidden = _hidden_blocks(graded["sources"][name])
    assert hidden
    released = nbformat.read(REPO / "assignments" / name / f"{name}.ipynb", as_version=4)
    autograded = nbformat.read(graded["root"] / "autograded" / "solved" / name / f"{name}.ipynb", as_version=4)
    released_text = "\n".join(c.source for c in released.cells)
    autograded_text = "\n".join(c.source for c in autograded.cells)
    assert "BEGIN HIDDEN TESTS" not in released_text and "BEGIN SOLUTION" not in released_text
    for block in hidden:
        assert block not in released_text, f"hidden test leaked into the release: {block[:80]!r}"
        assert block in autograded_text, f"hidden test not restored at grading: {block[:80]!r}"


@pytest.mark.parametrize("name", NAMES)
def test_scores_solution_blank_half(graded, name):
    source, rows = graded["sources"][name], graded["rows"]
    auto_total, total = _points(source, _auto_ids(source)), _points(source)
    _, earned = HALF[name]
    assert float(rows[("solved", name)]["score"]) == auto_total
    assert float(rows[("blank", name)]["score"]) == 0
    assert float(rows[("half", name)]["score"]) == _points(source, earned)
    assert 0 < _points(source, earned) < auto_total
    for student in ["solved", "blank", "half"]:
        assert float(rows[(student, name)]["max_score"]) == total


@pytest.mark.parametrize("name,bug", [(n, b) for n in sorted(PLANTED) for b in PLANTED[n]])
def test_planted_bugs_lose_exactly_the_points_of_their_tests(graded, name, bug):
    assert name in NAMES, f"PLANTED names an assignment that does not exist: {name}"
    source = graded["sources"][name]
    _, failing = PLANTED[name][bug]
    assert failing <= _auto_ids(source), f"unknown test cells: {failing - _auto_ids(source)}"
    expected = _points(source, _auto_ids(source)) - _points(source, failing)
    assert float(graded["rows"][(f"planted_{bug}", name)]["score"]) == expected


def test_manual_grade_brings_the_solution_to_full_marks(graded):
    from nbgrader.api import Gradebook

    root = graded["root"]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for name in NAMES:
            for gid in _manual_ids(graded["sources"][name]):
                grade = gb.find_grade(gid, name, name, "solved")
                grade.manual_score = grade.max_score
            gb.db.commit()
    out = root / "grades_after_manual.csv"
    _nbgrader("export", "--to", str(out), env=graded["env"])
    with open(out, newline="") as f:
        rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(f)}
    for name in NAMES:
        assert float(rows[("solved", name)]["score"]) == _points(graded["sources"][name])


def test_submitted_folder_is_untouched_and_everyone_gets_feedback(graded):
    root = graded["root"]
    assert _digest(root / "submitted") == graded["before"]
    for name in NAMES:
        for student in ["solved", "blank", "half"]:
            assert (root / "feedback" / student / name / f"{name}.html").is_file(), (student, name)
