"""Tests for dgm.train: the shared training loop and checkpoints.

References are independent of the code under test: numpy.linalg.lstsq for the regression
solution, hand-computed means with NumPy, and saved copies of tensors for checkpoints.
"""

import copy
import math
import os

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from dgm.train import (
    History,
    NonFiniteLossError,
    cosine_schedule,
    evaluate,
    fit,
    load_checkpoint,
    save_checkpoint,
    train_step,
)


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def regression_data(n=256, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.tensor([[1.5], [-2.0], [0.5]])[:d]
    y = x @ w + 0.3 + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def linear_model(d=3, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d, 1)


# --------------------------------------------------------------------------- convergence


def test_fit_converges_to_least_squares_solution():
    x, y = regression_data()
    model = linear_model()
    hist = fit(model, mse, (x, y), steps=800, batch_size=256, lr=0.05, device="cpu", seed=0, progress=False)

    design = np.concatenate([x.numpy().astype(np.float64), np.ones((len(x), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(design, y.numpy().astype(np.float64), rcond=None)
    learned = np.concatenate([model.weight.detach().numpy().ravel(), model.bias.detach().numpy()])
    np.testing.assert_allclose(learned, coef.ravel(), atol=1e-4)

    assert isinstance(hist, History)
    assert len(hist.train_loss) == 800 == hist.steps
    assert all(isinstance(v, float) for v in hist.train_loss)
    assert hist.seconds > 0


def test_minibatch_loss_decreases_on_average():
    x, y = regression_data(n=500)
    model = linear_model()
    hist = fit(model, mse, (x, y), steps=300, batch_size=32, lr=0.02, device="cpu", seed=0, progress=False)
    assert len(hist.train_loss) == 300
    first, last = np.mean(hist.train_loss[:30]), np.mean(hist.train_loss[-30:])
    assert last < 0.2 * first
    # the residual noise variance (0.1^2) is the floor a least-squares fit can reach
    assert last < 0.05


# --------------------------------------------------------------------------- non-finite losses


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_loss_raises_with_step(bad):
    x, y = regression_data(n=64)
    k = 7
    calls = {"n": 0}

    def loss_fn(model, batch):
        i = calls["n"]
        calls["n"] += 1
        if i == k:
            return torch.tensor(bad)
        return mse(model, batch)

    model = linear_model()
    model.eval()
    with pytest.raises(NonFiniteLossError) as info:
        fit(model, loss_fn, (x, y), steps=20, batch_size=16, device="cpu", progress=False)
    err = info.value
    assert isinstance(err, FloatingPointError)
    assert err.step == k
    assert f"step {k}" in str(err)
    assert str(bad) in str(err)
    assert err.history.steps == k  # the k good steps were recorded
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert model.training is False  # mode restored even on error


def test_train_step_refuses_nan_before_updating():
    model = linear_model()
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def nan_loss(m, batch):
        return m(batch).sum() * float("nan")

    with pytest.raises(NonFiniteLossError) as info:
        train_step(model, nan_loss, torch.randn(4, 3), opt)
    assert info.value.step == -1
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name])


def test_train_step_is_one_sgd_step():
    # for plain SGD the update is theta - lr * grad; grad computed by torch.autograd.grad separately
    x, y = regression_data(n=16)
    model = linear_model()
    ref = copy.deepcopy(model)
    loss = mse(ref, (x, y))
    grads = torch.autograd.grad(loss, list(ref.parameters()))
    value = train_step(model, mse, (x, y), torch.optim.SGD(model.parameters(), lr=0.1))
    assert value == pytest.approx(loss.item())
    for p, p0, g in zip(model.parameters(), ref.parameters(), grads):
        torch.testing.assert_close(p.detach(), (p0 - 0.1 * g).detach())


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_same_history_different_seed_different():
    x, y = regression_data(n=200)
    base = linear_model()

    def noisy_mse(model, batch):  # noise drawn from the global RNG: seed must cover it too
        xb, yb = batch
        return ((model(xb + 0.05 * torch.randn_like(xb)) - yb) ** 2).mean()

    def run(seed):
        return fit(copy.deepcopy(base), noisy_mse, (x, y), steps=40, batch_size=16,
                   device="cpu", seed=seed, progress=False).train_loss

    a, b, c = run(1), run(1), run(2)
    assert a == b
    assert a != c


# --------------------------------------------------------------------------- evaluate


def test_evaluate_is_mean_over_examples_with_uneven_last_batch():
    x, y = regression_data(n=10)
    model = linear_model()
    model.train()
    seen = []

    def loss_fn(m, batch):
        seen.append((torch.is_grad_enabled(), m.training, len(batch[0])))
        return mse(m, batch)

    got = evaluate(model, loss_fn, (x, y), batch_size=4)

    w = model.weight.detach().numpy().astype(np.float64)
    b = model.bias.detach().numpy().astype(np.float64)
    resid = x.numpy().astype(np.float64) @ w.T + b - y.numpy().astype(np.float64)
    expected = float(np.mean(resid**2))
    assert got == pytest.approx(expected, rel=1e-5)
    # a plain mean of the three batch means would be a different number
    batch_means = [np.mean(resid[i : i + 4] ** 2) for i in (0, 4, 8)]
    assert abs(np.mean(batch_means) - expected) > 1e-3
    assert [s[2] for s in seen] == [4, 4, 2]
    assert all(grad is False and training is False for grad, training, _ in seen)
    assert model.training is True  # mode restored


# --------------------------------------------------------------------------- data kinds


class PairDataset(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def test_dataset_and_dataloader_inputs():
    x, y = regression_data(n=50)
    kinds = []

    def loss_fn(model, batch):
        kinds.append(type(batch))
        return mse(model, batch)

    hist = fit(linear_model(), loss_fn, PairDataset(x, y), epochs=2, batch_size=16, device="cpu",
               seed=0, progress=False)
    assert hist.steps == 2 * math.ceil(50 / 16)

    loader = DataLoader(PairDataset(x, y), batch_size=7, shuffle=True)
    hist = fit(linear_model(), loss_fn, loader, epochs=3, device="cpu", progress=False)
    assert hist.steps == 3 * len(loader) == 3 * 8

    hist = fit(linear_model(), loss_fn, (x, y), steps=5, batch_size=16, device="cpu", progress=False)
    assert hist.steps == 5
    assert all(k in (tuple, list) for k in kinds)


def test_tensor_data_gives_tensor_batches_covering_every_example_each_epoch():
    x = torch.arange(10.0).reshape(10, 1)
    seen = []
    model = nn.Linear(1, 1)

    def loss_fn(m, batch):
        assert isinstance(batch, torch.Tensor)
        seen.append(batch.detach().clone())
        return m(batch).pow(2).mean()

    fit(model, loss_fn, x, epochs=2, batch_size=3, device="cpu", seed=0, progress=False)
    assert [len(b) for b in seen] == [3, 3, 3, 1, 3, 3, 3, 1]
    epoch1 = torch.cat(seen[:4]).ravel().sort().values
    epoch2 = torch.cat(seen[4:]).ravel().sort().values
    assert torch.equal(epoch1, x.ravel()) and torch.equal(epoch2, x.ravel())
    assert not torch.equal(torch.cat(seen[:4]).ravel(), x.ravel())  # shuffled


# --------------------------------------------------------------------------- validation, modes


def test_validation_schedule_and_value():
    x, y = regression_data(n=64)
    xv, yv = regression_data(n=30, seed=1)
    hist = fit(linear_model(), mse, (x, y), epochs=3, batch_size=16, val_data=(xv, yv), device="cpu",
               progress=False)
    assert hist.val_steps == [4, 8, 12]
    assert len(hist.val_loss) == 3

    model = linear_model()
    hist = fit(model, mse, (x, y), steps=10, batch_size=16, val_data=(xv, yv), val_every=4, device="cpu",
               progress=False)
    assert hist.val_steps == [4, 8, 10]
    w = model.weight.detach().double().numpy()
    b = model.bias.detach().double().numpy()
    expected = np.mean((xv.double().numpy() @ w.T + b - yv.double().numpy()) ** 2)
    assert hist.val_loss[-1] == pytest.approx(expected, rel=1e-5)

    hist = fit(linear_model(), mse, (x, y), steps=6, batch_size=16, val_data=(xv, yv), device="cpu",
               progress=False)
    assert hist.val_steps == [6]


def test_model_mode_restored_and_train_mode_during_fit():
    x, y = regression_data(n=32)
    modes = []

    def loss_fn(m, batch):
        modes.append(m.training)
        return mse(m, batch)

    model = linear_model()
    model.eval()
    fit(model, loss_fn, (x, y), steps=3, batch_size=16, device="cpu", progress=False)
    assert modes == [True, True, True]
    assert model.training is False
    model.train()
    fit(model, loss_fn, (x, y), steps=1, device="cpu", progress=False)
    assert model.training is True


def test_progress_bar_shows_running_loss(capsys):
    x, y = regression_data(n=32)
    fit(linear_model(), mse, (x, y), steps=5, batch_size=16, device="cpu", progress=True, desc="linreg")
    err = capsys.readouterr().err
    assert "linreg" in err and "loss=" in err
    fit(linear_model(), mse, (x, y), steps=5, batch_size=16, device="cpu", progress=False)
    assert capsys.readouterr().err == ""


def test_explicit_optimizer_is_used():
    x, y = regression_data(n=32)
    model = linear_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: nothing may change
    before = copy.deepcopy(model.state_dict())
    fit(model, mse, (x, y), steps=5, optimizer=opt, device="cpu", progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "kwargs, data, names",
    [
        (dict(steps=5, batch_size=0), None, ["batch_size"]),
        (dict(steps=5, batch_size=-3), None, ["batch_size"]),
        (dict(steps=5, lr=0.0), None, ["lr"]),
        (dict(steps=5, lr=-1e-3), None, ["lr"]),
        (dict(steps=5), "empty", ["data"]),
        (dict(steps=5), "mismatched", ["data"]),
        (dict(steps=5, epochs=2), None, ["steps", "epochs"]),
        (dict(), None, ["steps", "epochs"]),
        (dict(steps=0), None, ["steps"]),
        (dict(epochs=-1), None, ["epochs"]),
        (dict(steps=5, val_every=0), None, ["val_every"]),
        (dict(steps=5, device="not-a-device"), None, ["device"]),
        (dict(steps=5, val_data=(torch.randn(3, 3), torch.randn(2, 1))), None, ["val_data"]),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, data, names):
    x, y = regression_data(n=20)
    if data == "empty":
        data = (torch.empty(0, 3), torch.empty(0, 1))
    elif data == "mismatched":
        data = (x, y[:-1])
    else:
        data = (x, y)
    kwargs.setdefault("device", "cpu")
    with pytest.raises(ValueError) as info:
        fit(linear_model(), mse, data, progress=False, **kwargs)
    for name in names:
        assert name in str(info.value)


def test_empty_tensor_rejected_by_evaluate():
    with pytest.raises(ValueError, match="data"):
        evaluate(linear_model(), lambda m, b: m(b).mean(), torch.empty(0, 3))


def test_explicit_cpu_device():
    x, y = regression_data(n=32)
    model = linear_model()
    fit(model, mse, (x, y), steps=2, device="cpu", progress=False)
    assert next(model.parameters()).device == torch.device("cpu")
    fit(model, mse, (x, y), steps=2, device=torch.device("cpu"), progress=False)


# --------------------------------------------------------------------------- checkpoints


def _trained_with_adam(steps=3):
    x, y = regression_data(n=32)
    model = linear_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        train_step(model, mse, (x, y), opt)
    return model, opt, (x, y)


def test_checkpoint_round_trip_model_and_optimizer(tmp_path):
    model, opt, batch = _trained_with_adam()
    params = {k: v.clone() for k, v in model.state_dict().items()}
    state = {i: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
             for i, s in enumerate(opt.state[p] for p in model.parameters())}
    path = save_checkpoint(tmp_path / "sub" / "ckpt.pt", model, opt, epoch=3, note="hello")
    assert path.is_file()

    # perturb both the parameters and the optimizer state
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    train_step(model, mse, batch, opt)
    assert not torch.equal(model.weight, params["weight"])

    extra = load_checkpoint(path, model, opt)
    assert extra == {"epoch": 3, "note": "hello"}
    for k, v in model.state_dict().items():
        assert torch.equal(v, params[k])
    for i, p in enumerate(model.parameters()):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(opt.state[p][key]), torch.as_tensor(state[i][key]))
        assert state[i]["exp_avg"].abs().sum() > 0  # a non-trivial state was compared

    # and into a fresh model + fresh optimizer
    fresh = linear_model(seed=123)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.01)
    load_checkpoint(path, fresh, fresh_opt)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, params[k])
    for i, p in enumerate(fresh.parameters()):
        assert torch.equal(fresh_opt.state[p]["exp_avg"], state[i]["exp_avg"])


def test_checkpoint_file_loads_safely_with_weights_only(tmp_path):
    model, opt, _ = _trained_with_adam()
    path = save_checkpoint(tmp_path / "c.pt", model, opt, step=3)
    payload = torch.load(path, weights_only=True)
    assert set(payload) == {"model", "optimizer", "extra"}
    assert torch.equal(payload["model"]["weight"], model.weight.detach())


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    model, opt, _ = _trained_with_adam()
    path = tmp_path / "ckpt.pt"

    def broken_save(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, model, opt)
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary leftovers either


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, _ = _trained_with_adam()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, opt, version=1)
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save({"partial": True}, f)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, opt, version=2)
    monkeypatch.undo()
    assert load_checkpoint(path, linear_model()) == {"version": 1}
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_loading_into_mismatched_model_is_a_clear_error(tmp_path):
    model, opt, _ = _trained_with_adam()
    path = save_checkpoint(tmp_path / "ckpt.pt", model, opt)
    with pytest.raises(ValueError, match="does not match model"):
        load_checkpoint(path, nn.Linear(4, 1))
    with pytest.raises(ValueError, match="does not match model"):
        load_checkpoint(path, nn.Sequential(nn.Linear(3, 1)))
    no_opt = save_checkpoint(tmp_path / "no_opt.pt", model)
    with pytest.raises(ValueError, match="optimizer"):
        load_checkpoint(no_opt, model, torch.optim.Adam(model.parameters()))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt", model)


def test_fit_writes_checkpoint_with_history(tmp_path):
    x, y = regression_data(n=32)
    model = linear_model()
    hist = fit(model, mse, (x, y), steps=4, batch_size=16, device="cpu", progress=False,
               checkpoint=tmp_path / "run.pt")
    fresh = linear_model(seed=9)
    extra = load_checkpoint(tmp_path / "run.pt", fresh)
    assert extra["step"] == 4
    assert extra["history"]["train_loss"] == hist.train_loss
    for a, b in zip(fresh.parameters(), model.parameters()):
        assert torch.equal(a, b)


def test_history_repr_is_short():
    h = History(train_loss=[float(i) for i in range(10_000)], seconds=1.0)
    assert h.steps == 10_000
    assert len(repr(h)) < 200


def test_fit_clips_the_gradient_norm():
    # One SGD step with lr 1 moves the parameters by the clipped gradient: its norm is exactly c.
    model = nn.Linear(3, 1, bias=False)
    before = model.weight.detach().clone()

    def huge(m, batch):
        return 1e6 * m(batch).sum()

    fit(model, huge, torch.ones(4, 3), steps=1, batch_size=4, optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        max_grad_norm=0.5, progress=False, device="cpu")
    assert torch.linalg.vector_norm(model.weight.detach() - before).item() == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(ValueError, match="max_grad_norm"):
        fit(model, huge, torch.ones(4, 3), steps=1, max_grad_norm=0, progress=False)


def test_fit_applies_a_learning_rate_schedule_over_its_steps():
    # lr_schedule(optimizer, total_steps) is called once; cosine_schedule then sets, before step i,
    # lr_i = lr (1 + cos(pi i / T)) / 2 (no warm-up), which the loss reads off the optimizer.
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    seen = []

    def loss_fn(m, batch):
        seen.append(opt.param_groups[0]["lr"])
        return m(batch).pow(2).mean()

    fit(model, loss_fn, torch.randn(10, 2), epochs=3, batch_size=5, optimizer=opt, lr_schedule=cosine_schedule,
        progress=False, device="cpu")
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * i / 6)) for i in range(6)]
    assert seen == pytest.approx(expected)
    with pytest.raises(TypeError, match="lr_schedule"):
        fit(model, loss_fn, torch.randn(10, 2), steps=1, lr_schedule="cosine", progress=False)
