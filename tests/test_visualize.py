"""Plots are real PNG files with the labels asked for."""

import json

import torch

from aiayn.visualize import plot_attention, plot_validation_curve, read_metrics
from aiayn.visualize.curves import validation_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_attention_heatmap_is_a_png(tmp_path):
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    path = plot_attention(weights, ["a", "b", "c"], ["w", "x", "y", "z"], tmp_path / "h.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in tmp_path.iterdir()] == ["h.png"]  # no temporary file left


def test_validation_curve_reads_the_metrics_log(tmp_path):
    log = tmp_path / "metrics.jsonl"
    records = [
        {"time": 100.0, "split": "start", "step": 0},
        {"time": 160.0, "split": "train", "step_window": 10, "loss": 5.0},
        {"time": 220.0, "split": "valid", "step": 10, "bleu": 12.5},
        {"time": 340.0, "split": "valid", "step": 20, "bleu": 20.0},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert [r["bleu"] for r in read_metrics(log, "valid")] == [12.5, 20.0]
    assert validation_curve(log, "bleu") == ([2.0, 4.0], [12.5, 20.0])  # minutes from start
    # a resumed run logs its own clock: the 2 hours between stop and resume are not on it
    records += [
        {"time": 7540.0, "split": "start", "step": 20, "resume": True},
        {"time": 7600.0, "split": "valid", "step": 30, "bleu": 22.0, "minutes": 5.0},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert validation_curve(log, "bleu") == ([2.0, 4.0, 5.0], [12.5, 20.0, 22.0])
    out = plot_validation_curve(log, "bleu", tmp_path / "curve.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    both = plot_validation_curve({"a": log, "b": log}, "bleu", tmp_path / "both.png")
    assert both.read_bytes()[:8] == PNG_MAGIC


def test_loss_by_step_follows_the_steps_across_a_resume(tmp_path):
    """Train records count their windows from each start's step; records logged past the
    last checkpoint before a kill give way to the steps trained again after the resume."""
    from aiayn.visualize.curves import loss_by_step, plot_loss_by_tokens

    log = tmp_path / "metrics.jsonl"
    records = [
        {"split": "start", "step": 0},
        {"split": "train", "step_window": 10, "loss": 4.0},
        {"split": "train", "step_window": 10, "loss": 3.0},
        {"split": "valid", "step": 20, "loss": 3.1},
        {"split": "train", "step_window": 10, "loss": 2.9},  # step 30: killed before a save
        {"split": "start", "step": 20, "resume": True},
        {"split": "train", "step_window": 10, "loss": 2.8},
        {"split": "train", "step_window": 5, "loss": 2.7},  # a last, shorter window
        {"split": "valid", "step": 35, "loss": 2.75},
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    curves = loss_by_step(log)
    assert curves["train"] == ([10, 20, 30, 35], [4.0, 3.0, 2.8, 2.7])
    assert curves["valid"] == ([20, 35], [3.1, 2.75])
    out = plot_loss_by_tokens(log, 1000, tmp_path / "loss.png", target=2.5)
    assert out.read_bytes()[:8] == PNG_MAGIC
