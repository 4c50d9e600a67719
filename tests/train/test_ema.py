"""The EMA of the weights: its recursion, its clock, and what the Trainer does with it."""

import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from aiayn.errors import ConfigError
from aiayn.tasks.translation import TranslationTask
from aiayn.train import checkpoint as ckpt
from aiayn.train.ema import WeightEMA

from conftest import records, tiny_train_config, train


class _Tied(nn.Module):
    """An embedding tied to the output projection, as the translation models tie them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 3)
        self.proj = nn.Linear(3, 5)
        self.proj.weight = self.embed.weight


def test_the_ema_follows_its_recursion_with_the_warm_up_cap():
    """ema_n = d_n · ema_{n-1} + (1 − d_n) · θ_n, d_n = min(decay, (1 + n) / (10 + n)),
    computed here on plain floats for every weight of a model with tied weights."""
    torch.manual_seed(0)
    model = _Tied()
    ema = WeightEMA(model, decay=0.6)
    assert ema.module.proj.weight is ema.module.embed.weight  # a copy, tied as the model
    expected = {name: p.detach().double().clone() for name, p in model.named_parameters()}
    for n in range(8):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        d = min(0.6, (1 + n) / (10 + n))  # the cap rules for n < 5, the decay after
        for name, p in model.named_parameters():
            expected[name] = d * expected[name] + (1 - d) * p.detach().double()
    averaged = dict(ema.module.named_parameters())
    assert averaged.keys() == expected.keys() == {"embed.weight", "proj.bias"}
    for name, value in averaged.items():
        torch.testing.assert_close(value.double(), expected[name], rtol=1e-6, atol=1e-6)
        assert not value.requires_grad
    assert ema.updates == 8


def test_a_time_constant_decays_by_the_minutes_an_update_took():
    """With ema_minutes = τ an update of Δt minutes keeps exp(−Δt/τ) of the average: one
    update twice as long weighs as two (the same minutes on a slow and a fast machine)."""
    ema = WeightEMA(_Tied(), minutes=5.0)
    ema.updates = 10_000  # past the warm-up cap
    assert ema.decay_for(0.05) == pytest.approx(math.exp(-0.01))
    assert ema.decay_for(0.1) == pytest.approx(ema.decay_for(0.05) ** 2)
    ema.updates = 0
    assert ema.decay_for(0.05) == pytest.approx(0.1)  # capped: early on it follows the model


def test_the_config_takes_one_ema_and_not_with_checkpoint_averaging():
    assert not tiny_train_config().ema and tiny_train_config(ema_minutes=5.0).ema
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ConfigError, match="ema_decay"):
            tiny_train_config(ema_decay=bad)
    with pytest.raises(ConfigError, match=r"ema_minutes.*positive"):
        tiny_train_config(ema_minutes=0.0)
    with pytest.raises(ConfigError, match="not both"):
        tiny_train_config(ema_decay=0.99, ema_minutes=5.0)
    with pytest.raises(ConfigError, match="--average-last 0"):
        tiny_train_config(ema_decay=0.99, average_last=2)


def _weights(checkpoint, name):
    return load_file(str(checkpoint.path / name))


def test_the_trainer_averages_every_update_validates_the_average_and_exports_it(
    number_data, tmp_path, monkeypatch
):
    """The EMA leaves training untouched (raw weights equal a run without it), each
    checkpoint's EMA follows from the one before and the step's raw weights, validation
    scores the EMA, and the model directory holds the EMA of the best validation."""
    seen = {}  # step -> the weights validation scored
    original = TranslationTask.validate

    def spy(self, model):
        seen[len(seen) + 1] = {n: t.clone() for n, t in model.state_dict().items()}
        return original(self, model)

    monkeypatch.setattr(TranslationTask, "validate", spy)
    plain, out = tmp_path / "plain", tmp_path / "ema"
    common = dict(max_steps=6, valid_every=1, keep_last=10, best_metric="loss")
    train(number_data, plain, **common)
    seen.clear()
    train(number_data, out, ema_decay=0.7, **common)

    kept = ckpt.list_checkpoints(out / "checkpoints")
    assert [c.step for c in kept] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(ckpt.list_checkpoints(plain / "checkpoints"), kept, strict=True):
        for name, value in _weights(a, ckpt.WEIGHTS).items():
            assert torch.equal(value, _weights(b, ckpt.WEIGHTS)[name]), name
    emas = [_weights(c, ckpt.EMA_WEIGHTS) for c in kept]
    for step in range(2, 7):
        d = min(0.7, step / (9 + step))  # n = step - 1 updates before this one
        raw = _weights(kept[step - 1], ckpt.WEIGHTS)
        for name, value in emas[step - 1].items():
            torch.testing.assert_close(value, d * emas[step - 2][name] + (1 - d) * raw[name])
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]
    for step, scored in seen.items():
        for name, value in emas[step - 1].items():
            assert torch.equal(scored[name], value), (step, name)
    best = ckpt.read_best(out / "checkpoints")["step"]
    exported = load_file(str(out / "model.safetensors"))
    for name, value in emas[best - 1].items():
        assert torch.equal(exported[name], value), name
    losses = [r["loss"] for r in records(out, "valid")]
    assert losses != [r["loss"] for r in records(plain, "valid")]  # the EMA, not the raw model


def test_a_resumed_run_continues_the_same_average(number_data, tmp_path):
    """N steps straight == N/2, stop, resume, N/2: the EMA and its warm-up count come back."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(number_data, straight, max_steps=8, valid_every=4, ema_decay=0.8)
    train(number_data, split, max_steps=4, valid_every=4, ema_decay=0.8)
    train(number_data, split, resume=True, max_steps=8, valid_every=4, ema_decay=0.8)
    a = _weights(ckpt.list_checkpoints(straight / "checkpoints")[-1], ckpt.EMA_WEIGHTS)
    b = _weights(ckpt.list_checkpoints(split / "checkpoints")[-1], ckpt.EMA_WEIGHTS)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_an_ema_switched_on_at_a_resume_starts_from_the_resumed_weights(
    number_data, tmp_path, caplog
):
    out = tmp_path / "run"
    train(number_data, out, max_steps=4, valid_every=4)
    with caplog.at_level("WARNING", logger="aiayn.train.trainer"):
        train(number_data, out, resume=True, max_steps=6, valid_every=2, ema_minutes=1e-9)
    assert any("holds no EMA" in r.getMessage() for r in caplog.records)
    # a time constant of ~0 keeps nothing of the past: the EMA is the raw weights
    last = ckpt.list_checkpoints(out / "checkpoints")[-1]
    raw, ema = _weights(last, ckpt.WEIGHTS), _weights(last, ckpt.EMA_WEIGHTS)
    for name, value in ema.items():
        assert torch.equal(value, raw[name]), name
