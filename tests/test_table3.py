"""The paper's Table 3, small (`experiments.table3`): the smoke version runs end to end and
resumes without retraining; each row builds the model it names; directions are compared with
the paper's the way the page says."""

from __future__ import annotations

import json

import pytest
from experiments import table3
from experiments.table3 import BASE, ROWS, agreement, direction, row_settings

from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder


def test_smoke_runs_every_group_and_a_second_run_trains_nothing(tmp_path):
    args = ["--smoke", "--out", str(tmp_path), "--runs", str(tmp_path / "runs")]
    figures = table3.main(args)
    saved = json.loads((tmp_path / "table3.json").read_text())
    assert [r["name"] for r in saved["rows"]] == list(table3.SMOKE_ROWS)
    assert set(saved["groups"]) == set("ABCDE") and saved["answer"] == figures["answer"]
    assert "noise" not in saved["groups"] and "direction" not in saved["rows"][1]  # the seed row
    assert (tmp_path / "table3.png").stat().st_size > 10_000
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*/table3_row.json")}
    assert len(stamps) == len(table3.SMOKE_ROWS)
    table3.main(args)  # everything is there: nothing trains again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


def test_only_refuses_a_row_that_does_not_exist(tmp_path):
    with pytest.raises(SystemExit, match="no row named heads3"):
        table3.main(["--smoke", "--out", str(tmp_path), "--only", "heads3"])


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_each_row_builds_the_model_it_names(row):
    settings = row_settings(row, BASE, 10, 0)
    model = EncoderDecoder(ModelConfig.create(**settings["model"], src_vocab_size=64,
                                              tgt_vocab_size=64))  # fmt: skip
    attn = model.encoder.layers[0].self_attn
    changes = dict(row.changes)
    heads = changes.get("n_heads", BASE["n_heads"])
    d_model = changes.get("d_model", BASE["d_model"])
    d_k = changes.get("d_k", d_model // heads)
    assert attn.w_q.weight.shape == (heads * d_k, d_model)  # (h·d_k, d_model)
    assert attn.w_v.weight.shape == (d_model, d_model)  # values stay d_model / h per head
    assert len(model.encoder.layers) == changes.get("n_encoder_layers", BASE["n_encoder_layers"])
    assert model.encoder.layers[0].ffn.w_1.out_features == changes.get("d_ff", BASE["d_ff"])
    assert settings["label_smoothing"] == changes.get("label_smoothing", 0.1)


def test_direction_counts_a_move_inside_the_noise_band_as_none():
    assert direction(0.29, 0.3) == 0 and direction(-0.31, 0.3) == -1 and direction(2, 0.3) == 1


def test_agreement_compares_our_moves_with_the_papers():
    heads1 = next(r for r in ROWS if r.name == "heads1")  # the paper: BLEU down, perplexity up
    base = {"bleu": 30.0, "ppl": 10.0}
    same = agreement(heads1, {"bleu": 29.0, "ppl": 11.0}, base)
    assert same["bleu"] == {"ours": -1, "paper": -1, "agree": True}
    assert same["ppl"] == {"ours": 1, "paper": 1, "agree": True}
    other = agreement(heads1, {"bleu": 31.0, "ppl": 10.1}, base)  # up, and within 2%
    assert not other["bleu"]["agree"] and other["ppl"]["ours"] == 0 and not other["ppl"]["agree"]


def test_the_noise_band_is_the_bases_seed_to_seed_difference_with_a_floor():
    base = {"bleu": 13.0, "ppl": 40.0}
    assert table3.noise_band({"base": base, "base_seed1": {"bleu": 11.5, "ppl": 42.0}}) == (
        pytest.approx({"bleu": 1.5, "ppl": 0.05})
    )
    assert (
        table3.noise_band({"base": base, "base_seed1": {"bleu": 13.1, "ppl": 40.1}})
        == (table3.BAND["ours"])
    )
    assert table3.noise_band({"base": base, "base_seed1": None}) == table3.BAND["ours"]
    heads1 = next(r for r in ROWS if r.name == "heads1")
    wide = agreement(heads1, {"bleu": 12.0, "ppl": 41.0}, base, {"bleu": 1.5, "ppl": 0.05})
    assert wide["bleu"]["ours"] == 0 and wide["ppl"]["ours"] == 0  # both inside the seeds' band
