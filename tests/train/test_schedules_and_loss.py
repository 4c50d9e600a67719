"""The paper's learning-rate schedule and label-smoothed loss."""

import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from aiayn.errors import ConfigError
from aiayn.train.config import TrainConfig
from aiayn.train.loss import label_smoothed_nll, r_drop_loss
from aiayn.train.schedules import cosine, cosine_by_time, inverse_sqrt, learning_rate, noam


def test_noam_is_the_papers_formula():
    d, warmup = 512, 4000
    for step in (1, 100, 3999, 4000, 4001, 100_000):
        expected = d**-0.5 * min(step**-0.5, step * warmup**-1.5)
        assert noam(step, d, warmup) == pytest.approx(expected)
    # linear warm-up to the peak at step = warmup, then ∝ 1/√step
    assert noam(4000, d, warmup) == pytest.approx(d**-0.5 * warmup**-0.5)  # ≈ 7.0e-4
    assert noam(2000, d, warmup) == pytest.approx(noam(4000, d, warmup) / 2)
    assert noam(16000, d, warmup) == pytest.approx(noam(4000, d, warmup) / 2)


def test_inverse_sqrt_peaks_at_warmup_and_is_continuous():
    assert inverse_sqrt(100, 1e-3, 100) == pytest.approx(1e-3)
    assert inverse_sqrt(50, 1e-3, 100) == pytest.approx(5e-4)
    assert inverse_sqrt(400, 1e-3, 100) == pytest.approx(5e-4)
    cfg = TrainConfig(schedule="inverse_sqrt", peak_lr=1e-3, warmup_steps=100)
    assert learning_rate(cfg, 100, 512) == pytest.approx(1e-3)


def test_cosine_warms_up_then_decays_monotonically_to_min_lr():
    peak, warmup, end, floor = 2e-3, 10, 110, 1e-5
    lrs = [cosine(s, peak, warmup, end, floor) for s in range(1, 200)]
    assert lrs[warmup // 2 - 1] == pytest.approx(peak / 2)  # linear warm-up
    assert max(lrs) == pytest.approx(peak) == lrs[warmup - 1]
    after = lrs[warmup - 1 :]
    assert all(a >= b for a, b in itertools.pairwise(after))  # never rises again
    assert cosine(60, peak, warmup, end, floor) == pytest.approx((peak + floor) / 2)  # halfway
    assert lrs[end - 1] == pytest.approx(floor) == lrs[-1]  # reaches min_lr, then stays
    # decay_steps defaults to max_steps: training ends at the bottom of the cosine
    cfg = TrainConfig(schedule="cosine", peak_lr=peak, warmup_steps=warmup, max_steps=end)
    assert learning_rate(cfg, end, 256) == pytest.approx(0.0)
    assert learning_rate(cfg.replace(decay_steps=60), 35, 256) == pytest.approx(peak / 2)


def test_cosine_needs_an_end_after_warmup():
    with pytest.raises(ConfigError, match="decay_steps, decay_minutes or max_steps"):
        TrainConfig(schedule="cosine", max_steps=None, max_minutes=60)
    with pytest.raises(ConfigError, match="warmup_steps=4000"):
        TrainConfig(schedule="cosine", max_steps=3000)
    with pytest.raises(ConfigError, match="min_lr"):
        TrainConfig(schedule="cosine", peak_lr=1e-3, min_lr=2e-3)


def test_cosine_by_time_reaches_min_lr_at_decay_minutes_whatever_the_step():
    peak, floor = 2e-3, 1e-5
    # warm-up caps the lr by step; after it, only the clock matters
    assert cosine_by_time(5, 0.0, peak, 10, 60.0, floor) == pytest.approx(peak / 2)
    assert cosine_by_time(10, 0.0, peak, 10, 60.0, floor) == pytest.approx(peak)
    for step in (100, 10_000):
        assert cosine_by_time(step, 30.0, peak, 10, 60.0, floor) == pytest.approx(
            (peak + floor) / 2
        )
        assert cosine_by_time(step, 60.0, peak, 10, 60.0, floor) == pytest.approx(floor)
        assert cosine_by_time(step, 75.0, peak, 10, 60.0, floor) == pytest.approx(floor)
    lrs = [cosine_by_time(50, m / 10, peak, 10, 60.0, floor) for m in range(700)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))
    cfg = TrainConfig(
        schedule="cosine", peak_lr=peak, warmup_steps=10, max_steps=None, max_minutes=60,
        decay_minutes=60,
    )  # fmt: skip
    assert learning_rate(cfg, 50, 256, minutes=30.0) == pytest.approx(peak / 2)
    assert learning_rate(cfg, 50, 256, minutes=60.0) == pytest.approx(0.0)


def test_decay_minutes_is_for_the_cosine_alone():
    with pytest.raises(ConfigError, match="only the cosine"):
        TrainConfig(schedule="inverse_sqrt", decay_minutes=60)
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig(schedule="cosine", max_steps=9000, decay_steps=5000, decay_minutes=60)
    with pytest.raises(ConfigError, match=r"decay_minutes.*must be positive"):
        TrainConfig(schedule="cosine", decay_minutes=0)


def test_label_smoothed_loss_matches_torch_and_ignores_padding():
    logits = torch.randn(3, 5, 11)
    target = torch.randint(1, 11, (3, 5))
    target[1, 3:] = 0  # padding
    out = label_smoothed_nll(logits, target, epsilon=0.1, pad_id=0)
    ref = F.cross_entropy(
        logits.flatten(0, 1), target.flatten(), ignore_index=0, label_smoothing=0.1,
        reduction="sum",
    )  # fmt: skip
    assert_close(out.loss, ref)
    nll = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=0, reduction="sum")
    assert_close(out.nll, nll)
    assert out.n_tokens == 13
    # ε = 0 is plain cross-entropy; changing logits at padded positions changes nothing
    assert_close(label_smoothed_nll(logits, target, 0.0, 0).loss, nll)
    logits2 = logits.clone()
    logits2[1, 3:] = 100.0
    assert_close(label_smoothed_nll(logits2, target, 0.1, 0).loss, out.loss)


def test_r_drop_adds_the_symmetric_kl_of_the_two_passes_over_real_tokens():
    logits_a, logits_b = torch.randn(3, 5, 11), torch.randn(3, 5, 11)
    target = torch.randint(1, 11, (3, 5))
    target[1, 3:] = 0  # padding
    out = r_drop_loss(logits_a, logits_b, target, epsilon=0.1, pad_id=0, alpha=5.0)
    a = label_smoothed_nll(logits_a, target, 0.1, 0)
    b = label_smoothed_nll(logits_b, target, 0.1, 0)
    lp_a, lp_b = logits_a.log_softmax(-1), logits_b.log_softmax(-1)
    kl_ab = F.kl_div(lp_b, lp_a, log_target=True, reduction="none").sum(-1)  # KL(p_a‖p_b)
    kl_ba = F.kl_div(lp_a, lp_b, log_target=True, reduction="none").sum(-1)
    real = target != 0
    sym_kl = (kl_ab + kl_ba)[real].sum()
    assert_close(out.loss, 0.5 * (a.loss + b.loss) + 5.0 / 4 * sym_kl)
    assert_close(out.nll, 0.5 * (a.nll + b.nll))
    assert out.n_tokens == 13  # the batch's tokens, counted once
    # Identical passes: no divergence, the plain loss. Padded positions change nothing.
    same = r_drop_loss(logits_a, logits_a, target, 0.1, 0, alpha=5.0)
    assert_close(same.loss, a.loss)
    logits_b2 = logits_b.clone()
    logits_b2[1, 3:] = 100.0
    assert_close(r_drop_loss(logits_a, logits_b2, target, 0.1, 0, 5.0).loss, out.loss)


def test_train_config_rejects_nonsense_naming_the_option():
    with pytest.raises(ConfigError, match="'update_freq'"):
        TrainConfig(update_freq=0)
    with pytest.raises(ConfigError, match="average_last"):
        TrainConfig(keep_last=2, average_last=5)
    with pytest.raises(ConfigError, match=r"unknown option.*max_step"):
        TrainConfig.from_dict({"max_step": 3})


def test_train_config_holds_no_task_option():
    """Batches and losses are the task's (TranslationConfig): the Trainer knows none of them."""
    from aiayn.tasks.translation import TranslationConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not fields & {f.name for f in dataclasses.fields(TranslationConfig)}
    assert not fields & {"label_smoothing", "r_drop", "max_tokens", "max_sentences"}


def test_noam_needs_the_model_width_and_the_others_do_not():
    noam_cfg = TrainConfig(warmup_steps=100)
    assert learning_rate(noam_cfg, 100, 64) == pytest.approx(noam(100, 64, 100))
    with pytest.raises(ConfigError, match="d_model"):
        learning_rate(noam_cfg, 100)
    cfg = TrainConfig(schedule="inverse_sqrt", peak_lr=1e-3, warmup_steps=100)
    assert learning_rate(cfg, 100) == pytest.approx(1e-3)
