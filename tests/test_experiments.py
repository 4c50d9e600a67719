"""The experiments of docs/why.md (issue 29): each smoke version runs end to end and writes
its plot and figures, and what each measures obeys the law it is there to show."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from experiments import (
    additive,
    decoding,
    embedding_scale,
    heads,
    norm_placement,
    norms,
    pooling_text,
    positions,
    qk_tied,
    recurrence,
    residuals,
    sinusoid,
    sqrt_dk,
    subwords,
)


def test_sqrt_dk_smoke_writes_its_figures_and_plot(tmp_path):
    figures = sqrt_dk.main(["--smoke", "--out", str(tmp_path)])
    assert (tmp_path / "sqrt_dk.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "sqrt_dk.json").read_text())
    assert saved["answer"] == figures["answer"] and saved["meta"]["smoke"] is True
    assert [r["scaled"] for r in saved["training"]] == [True, False]


def test_score_variance_grows_as_d_k_and_scaling_removes_it():
    import torch

    v = sqrt_dk.score_variance(torch.Generator().manual_seed(0), 20000)
    for d, raw, scaled in zip(v["d_k"], v["var_qk"], v["var_qk_scaled"], strict=True):
        assert raw == pytest.approx(d, rel=0.1)
        assert scaled == pytest.approx(1.0, rel=0.1)


def test_unscaled_softmax_saturates_as_d_k_grows():
    import torch

    s = sqrt_dk.softmax_health(torch.Generator().manual_seed(0), 500)
    assert s["entropy_raw"] == sorted(s["entropy_raw"], reverse=True)  # collapses with d_k
    assert s["entropy_raw"][-1] < 0.1 < 0.8 < min(s["entropy_scaled"])
    assert s["grad_scores_raw"][-1] < s["grad_scores_scaled"][-1] / 2
    spread = max(s["entropy_scaled"]) - min(s["entropy_scaled"])
    assert spread < 0.02  # scaled: the same softmax at every d_k


def test_unscaled_attention_is_exactly_raw_q_dot_k():
    """The experiment's 'without scaling' is the raw q·k, not an approximation."""
    import torch

    from aiayn.nn.attention import MultiHeadAttention

    torch.manual_seed(0)
    attn = MultiHeadAttention(32, 1, impl="math").eval()
    x = torch.randn(2, 5, 32)
    q, k = attn.w_q(x), attn.w_k(x)  # (2, 5, 32)
    expected = (q @ k.transpose(1, 2)).softmax(-1)  # (2, 5, 5), no 1/√d_k
    attn.w_q = torch.nn.Sequential(attn.w_q, sqrt_dk._Times(math.sqrt(32)))
    _, weights = attn(x, need_weights=True)  # (2, 1, 5, 5)
    torch.testing.assert_close(weights[:, 0], expected)


def test_repeated_token_batches_have_exactly_one_repeat():
    import torch

    ids, labels = sqrt_dk.repeated_token_batch(torch.Generator().manual_seed(1), 200, 12, 40)
    assert ids.shape == (200, 13) and (ids[:, 0] == 1).all()
    for row, label in zip(ids[:, 1:], labels, strict=True):
        values, counts = row.unique(return_counts=True)
        assert counts.max() == 2 and (counts == 2).sum() == 1
        assert values[counts == 2].item() - 2 == label


def test_sinusoid_rotation_maps_every_position_to_the_one_k_later(tmp_path):
    from aiayn.nn.positional import sinusoid_table

    pe = sinusoid_table(300, 64).double()  # (300, 64)
    for k in (1, 7, 120):
        torch.testing.assert_close(pe[:-k] @ sinusoid.rotation(k, 64), pe[k:], atol=1e-6, rtol=0)
    wrong = sinusoid.rotation(3, 64)
    assert (pe[:-2] @ wrong - pe[2:]).abs().max() > 0.1  # the offset matters
    figures = sinusoid.main(["--smoke", "--out", str(tmp_path)])
    assert max(r["held_out_rms"] for r in figures["offsets"]) < 1e-4
    assert figures["dot"]["max_spread_over_pos"] < 1e-4
    assert (tmp_path / "sinusoid.png").is_file()


def test_recurrence_smoke_and_models_of_equal_size(tmp_path):
    figures = recurrence.main(["--smoke", "--out", str(tmp_path)])
    sizes = {r["model"]: r["params"] for r in figures["recall"]}
    assert max(sizes.values()) / min(sizes.values()) < 1.1  # within 10% of each other
    assert figures["timing"]["sequential_steps"]["lstm"] == figures["timing"]["lengths"]
    assert (tmp_path / "recurrence.png").is_file()


def test_rnn_gradients_fade_with_distance_and_attention_reaches_every_token():
    g = {kind: recurrence.gradient_by_distance(kind, 64, seed=0) for kind in recurrence.KINDS}
    for rnn in ("lstm", "gru"):
        assert g[rnn][63] < 1e-3 * g[rnn][1]  # a product of 62 Jacobians
    far, near = g["transformer"][63], g["transformer"][1]
    assert 0.1 < far / near < 10  # one attention step from the output, wherever it is


def test_recall_batches_label_the_first_token():
    ids, labels = recurrence.recall_batch(torch.Generator().manual_seed(0), 50, 7)
    assert ids.shape == (50, 8) and ((ids >= 2) & (ids < recurrence.VOCAB)).all()
    assert (labels == ids[:, 0] - 2).all()


def test_norm_placement_smoke_runs_all_four_trainings(tmp_path):
    figures = norm_placement.main(["--smoke", "--out", str(tmp_path)])
    runs = {(r["norm"], r["warmup_steps"] > 1) for r in figures["training"]}
    assert runs == {(n, w) for n in ("post-LN", "pre-LN") for w in (True, False)}
    assert all(r["valid"] for r in figures["training"])
    assert (tmp_path / "norm_placement.png").is_file()


def test_post_ln_gradients_grow_toward_the_top_and_pre_ln_ones_do_not():
    """Xiong et al.'s observation, on aiayn's own blocks, at initialisation."""
    post = norm_placement.gradients_at_init(False, seed=0)["decoder"]
    pre = norm_placement.gradients_at_init(True, seed=0)["decoder"]
    assert post[-1] > 1.5 * post[0]
    assert pre[-1] < pre[0]


def test_norms_smoke_and_only_batch_norm_depends_on_the_batch(tmp_path):
    figures = norms.main(["--smoke", "--out", str(tmp_path)])
    assert [r["norm"] for r in figures["training"]] == ["layer", "rms", "batch"]
    dependence = figures["batch_dependence"]
    assert dependence["layer"] < 1e-5 and dependence["rms"] < 1e-5 < 1e-2 < dependence["batch"]
    gaps = figures["train_eval_gap"]
    assert gaps["layer"]["train_mode"] == pytest.approx(gaps["layer"]["eval_mode"], abs=1e-5)
    assert abs(gaps["batch"]["train_mode"] - gaps["batch"]["eval_mode"]) > 1e-3
    assert (tmp_path / "norms.png").is_file()


SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare/input.txt.gz"


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="needs ../shared/data (Tiny Shakespeare)")
def test_positions_smoke_trains_every_scheme_and_learned_stops_at_its_length(tmp_path):
    figures = positions.main(["--smoke", "--text", str(SHAKESPEARE), "--out", str(tmp_path)])
    assert set(figures["loss"]) == set(positions.SCHEMES)
    for kind, losses in figures["loss"].items():
        assert losses[0] is not None and math.isfinite(losses[0])
        assert (losses[1] is None) == (kind == "learned")  # no learned vector past L
    assert (tmp_path / "positions.png").is_file()
    # the two sinusoidal rows differ in the embedding scale alone (§3.4's × √d_model)
    plain, scaled = (positions.model_config(k, 64) for k in ("sinusoidal", "sinusoidal_scaled"))
    assert plain.positional == scaled.positional == "sinusoidal"
    assert scaled.scale_embeddings and not plain.scale_embeddings
    assert plain.to_dict() | {"scale_embeddings": True} == scaled.to_dict()


def test_qk_tied_smoke_and_tied_scores_are_symmetric_with_the_diagonal_on_top(tmp_path):
    figures = qk_tied.main(["--smoke", "--out", str(tmp_path)])
    v = figures["variants"]
    assert v["tied"]["score_asymmetry"] < 1e-6 < 0.1 < v["separate"]["score_asymmetry"]
    assert v["separate"]["parameters"] - v["tied"]["parameters"] == 4 * (128 * 128 + 128)
    for self_weight, _, uniform in v["tied"]["at_init"]["encoder"]:
        assert self_weight > 3 * uniform  # a Gram matrix's diagonal dominates its rows
    assert (tmp_path / "qk_tied.png").is_file()


def test_a_tied_projection_gives_a_positive_semidefinite_gram_matrix():
    from aiayn.nn.attention import MultiHeadAttention

    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 1)
    attn.w_k = attn.w_q
    x = torch.randn(7, 16)
    scores = attn.w_q(x) @ attn.w_k(x).T  # (7, 7)
    torch.testing.assert_close(scores, scores.T)
    assert torch.linalg.eigvalsh(scores.double()).min() > -1e-6


def test_additive_smoke_costs_more_memory_than_dot_product(tmp_path):
    figures = additive.main(["--smoke", "--out", str(tmp_path)])
    t = figures["training"]
    assert t["additive"]["parameters"] - t["dot"]["parameters"] == 6 * 128  # one v per head
    c = figures["cost"]
    assert c["additive"][-1]["saved_mib"] > 2 * c["dot (math)"][-1]["saved_mib"]
    assert (tmp_path / "additive.png").is_file()


def test_make_additive_keeps_the_projections():
    from experiments.numbers import small_model

    from aiayn.models.encoder_decoder import EncoderDecoder
    from aiayn.nn.additive_attention import AdditiveAttention

    model = EncoderDecoder(small_model())
    w_q = model.decoder.layers[0].cross_attn.w_q
    additive.make_additive(model)
    cross = model.decoder.layers[0].cross_attn
    assert isinstance(cross, AdditiveAttention) and cross.w_q is w_q


def test_heads_smoke_and_a_masked_head_changes_only_its_slice(tmp_path):
    from aiayn.nn.attention import MultiHeadAttention

    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2).eval()
    attn.w_o = torch.nn.Identity()  # see the merged heads themselves
    x = torch.randn(1, 3, 8)
    full, _ = attn(x)
    with heads.HeadMask(attn, 1):
        masked, _ = attn(x)
    assert (masked[..., 4:] == 0).all()
    torch.testing.assert_close(masked[..., :4], full[..., :4])
    torch.testing.assert_close(attn(x)[0], full)  # the hook is gone after the block
    figures = heads.main(["--smoke", "--out", str(tmp_path)])
    assert all(0 <= d <= 1 for k in heads.KINDS for d in figures["trained"][k]["divergence"])
    assert len(figures["pruning"]["heads"]["decoder_cross"][0]) == 4
    assert (tmp_path / "heads.png").is_file()


def test_head_divergence_is_zero_for_equal_heads_and_one_for_disjoint():
    same = torch.softmax(torch.randn(1, 1, 3, 4), -1).repeat(1, 3, 1, 1)  # (1, 3 heads, 3, 4)
    real = torch.ones(1, 3, dtype=torch.bool)
    assert heads.head_divergence(same, real) < 1e-6
    disjoint = torch.eye(2).reshape(1, 2, 1, 2)  # head 1 on key 1, head 2 on key 2
    assert heads.head_divergence(disjoint, torch.ones(1, 1, dtype=torch.bool)) == pytest.approx(1)


def test_embedding_scale_smoke_runs_the_grid(tmp_path):
    figures = embedding_scale.main(["--smoke", "--out", str(tmp_path)])
    runs = {(r["scale"], r["tie"]): r for r in figures["runs"]}
    assert set(runs) == set(embedding_scale.GRID)
    # N(0, 1/d) embeddings: norm ≈ 1 unscaled, √d scaled; the sinusoids have norm √(d/2)
    assert runs[True, "all"]["token_to_position_init"] == pytest.approx(math.sqrt(2), rel=0.1)
    assert runs[False, "all"]["token_to_position_init"] == pytest.approx(1 / 8, rel=0.1)
    assert (tmp_path / "embedding_scale.png").is_file()


def test_residuals_smoke_and_no_residual_drops_the_identity(tmp_path):
    from aiayn.nn.residual import Residual

    res, none = Residual(4, 0.0, False), residuals.NoResidual(4, 0.0, False)
    x, y = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    torch.testing.assert_close(none.after(x, y), res.norm(y))
    torch.testing.assert_close(res.after(x, y), res.norm(x + y))
    figures = residuals.main(["--smoke", "--out", str(tmp_path)])
    g = figures["gradients_at_init"]
    assert g["post-LN, without"]["output_cosine"] > g["post-LN, with"]["output_cosine"]
    assert set(figures["training"]) == {"with", "without"}
    assert (tmp_path / "residuals.png").is_file()


def test_pooling_text_smoke_trains_both_mixers_on_every_task(tmp_path):
    figures = pooling_text.main(["--smoke", "--out", str(tmp_path)])
    for task in ("repeat", "lookup", "numbers"):
        assert set(figures[task]) == set(pooling_text.MIXERS)
    assert figures["repeat"]["pooling"]["final_entropy"] is None  # no attention weights
    for mixer in pooling_text.MIXERS:
        by_label = figures["lookup"][mixer]["accuracy_by_label"]
        assert len(by_label) == pooling_text.LENGTH
        assert all(x is None or 0.0 <= x <= 1.0 for x in by_label)
    n = figures["numbers"]
    assert n["attention"]["parameters"] - n["pooling"]["parameters"] == 2 * 4 * 128 * 129
    assert (tmp_path / "pooling_text.png").is_file()


def test_lookup_batches_ask_where_the_query_occurs():
    ids, labels = pooling_text.lookup_batch(torch.Generator().manual_seed(0), 200)
    L = pooling_text.LENGTH
    assert ids.shape == (200, L + 1) and set(labels.tolist()) == set(range(L))
    for row, label in zip(ids, labels, strict=True):
        words = row[1:]
        assert len(set(words.tolist())) == L and (words >= 2).all()
        assert (words == row[0]).nonzero().item() == label


def test_a_pooling_encoder_cannot_see_past_its_reach_at_the_query():
    """Why the pooling model must fail the lookup beyond 2 positions: with 2 blocks of
    window 3, position 0's final vector depends on positions 0 … 2 only."""
    from aiayn.models import presets
    from aiayn.models.encoder_only import EncoderOnly

    torch.manual_seed(0)
    cfg = presets.bert_tiny(vocab_size=66, n_layers=2, d_model=32, n_heads=1, d_ff=64,
                            max_len=17, num_labels=16, type_vocab_size=0)  # fmt: skip
    model = EncoderOnly(cfg).eval()
    pooling_text.pool_encoder(model)
    ids, _ = pooling_text.lookup_batch(torch.Generator().manual_seed(1), 4)
    changed = ids.clone()
    changed[:, 3:] = torch.randint(2, 66, changed[:, 3:].shape)
    changed_near = ids.clone()
    changed_near[:, 2] = (ids[:, 2] - 1).clamp_min(2) + (ids[:, 2] == 2)
    with torch.no_grad():
        assert torch.equal(model.classify(ids), model.classify(changed))
        assert not torch.allclose(model.classify(ids), model.classify(changed_near))


def test_accuracy_by_label_counts_each_label_apart():
    from experiments.sqrt_dk import _accuracy_by_label

    class Fixed(torch.nn.Module):  # always answers label 0
        config = type("C", (), {"num_labels": 3})()

        def classify(self, ids):
            return torch.tensor([1.0, 0.0, 0.0]).expand(len(ids), 3)

    def batches(generator, size):  # labels 0 and 1 only
        labels = torch.arange(size) % 2
        return labels[:, None], labels

    assert _accuracy_by_label(Fixed(), 0, batches) == [1.0, 0.0, None]


def test_decoding_diversity_measures():
    assert decoding.distinct_2([[1, 2, 3], [1, 2, 4]]) == pytest.approx(3 / 4)
    assert decoding.distinct_2([[5]]) == 0.0
    s = decoding.score([[[1, 2], [1, 2]], [[3], [4]]], [[1, 2], [4]])
    assert s == {"exact_match": 0.75, "any_correct": 1.0, "distinct_outputs": 1.5,
                 "distinct_2": 0.25}  # fmt: skip


def test_decoding_smoke_writes_every_strategy(tmp_path):
    figures = decoding.main(["--smoke", "--out", str(tmp_path)])
    assert set(figures["strategies"]) == {"greedy", "beam 4", *decoding.SAMPLERS}
    for name in decoding.SAMPLERS:
        assert 1 <= figures["strategies"][name]["distinct_outputs"] <= figures["samples"]
    assert (tmp_path / "decoding.png").is_file()


def test_subword_measures_on_a_tiny_corpus():
    lines = ["the cat sat on the mat", "a dog sat on a log", "the cat and the dog"] * 20
    for make in (subwords.byte_level, subwords.char_level):
        for kind in subwords.KINDS:
            m = subwords.measure(make(kind)(lines, 600), ["the cat sat", "a dog ran"])
            assert m["tokens_per_sentence"] >= 3 and 0 <= m["single_char_share"] <= 1
    char = subwords.measure(subwords.char_level("bpe")(lines, 600), ["the ü cat"])
    assert char["unk_share"] > 0  # "ü" never seen: unknown without a byte fallback
    byte = subwords.measure(subwords.byte_level("bpe")(lines, 600), ["the ü cat"])
    assert byte["unk_share"] == 0


MULTI30K = Path(__file__).resolve().parents[2] / "shared/data/multi30k/train.en.gz"


@pytest.mark.skipif(not MULTI30K.is_file(), reason="needs ../shared/data (Multi30k)")
def test_subwords_smoke_measures_every_model_and_bigger_vocabularies_shorten(tmp_path):
    figures = subwords.main(["--smoke", "--out", str(tmp_path)])
    rows = figures["results"]
    assert len(rows) == len(subwords.LANGS) * 2 * len(subwords.KINDS) * len(figures["sizes"])
    for lang in subwords.LANGS:
        for kind in subwords.KINDS:
            by_size = [r["tokens_per_sentence"] for r in rows
                       if (r["lang"], r["level"], r["kind"]) == (lang, "byte", kind)]  # fmt: skip
            assert by_size == sorted(by_size, reverse=True)
    assert all(r["unk_share"] == 0 for r in rows if r["level"] == "byte")
    assert (tmp_path / "subwords.png").is_file()


def test_batching_smoke_plans_every_way_and_a_missing_folder_is_one_line(tmp_path):
    from experiments import batching

    figures = batching.main(["--smoke", "--out", str(tmp_path)])
    assert set(figures["plans"]) == set(batching.PLANS)
    total = sum(figures["plans"]["tokens, bucketed"]["target_tokens"])
    for row in figures["plans"].values():
        assert sum(row["target_tokens"]) == total  # every plan batches every pair once
        assert row["target_tokens_per_s"] > 0
    assert (tmp_path / "batching.png").is_file()
    with pytest.raises(SystemExit, match="aiayn data multi30k"):
        batching.main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)])


def test_batching_bucketed_pads_least_and_fixed_sentence_batches_most():
    """On skewed lengths (log-normal, 3–120 tokens) at one budget: sorting by length leaves
    the least padding, token batches in random order more, fixed sentence batches as many per
    epoch as the bucketed plan's the most; only a fixed B sized for the longest pair and the
    token plans keep every batch within the budget."""
    import numpy as np
    from experiments import batching

    rng = np.random.default_rng(0)
    src = np.clip(rng.lognormal(3.0, 0.6, 4000), 3, 120).astype(int)
    lengths = np.stack([src, np.clip(src + rng.integers(-3, 4, 4000), 2, 121)], axis=1)
    plans = batching.make_plans(lengths, 2048, seed=0)
    pad = {k: batching.measure(p, lengths, 2048)["padding_fraction"] for k, p in plans.items()}
    assert pad["tokens, bucketed"] < 0.1
    assert pad["tokens, bucketed"] < pad["tokens, random order"] < pad["sentences"]
    for name, plan in plans.items():
        assert sorted(plan.indices.tolist()) == list(range(4000))  # every pair once
        fits = batching.measure(plan, lengths, 2048)["max_cost"] <= 2048
        assert fits == (name != "sentences")


def test_table3_seeds_finds_the_rows_whose_arrow_flips_with_the_seed(tmp_path, capsys):
    from experiments import table3_seeds

    def table(seed, bleu_dir):
        def row(name, d):
            return {"group": "A", "name": name, "ours": name,
                    "direction": {"bleu": {"ours": d, "paper": -1, "agree": d == -1},
                                  "ppl": {"ours": 1, "paper": 1, "agree": True}}}  # fmt: skip

        rows = [{"group": "base", "name": "base"}, row("heads1", bleu_dir), row("heads32", -1)]
        return {"steps": 400, "base": {"d_model": 128}, "rows": rows, "meta": {"seed": seed},
                "groups": {"A": {"agrees": True}}}  # fmt: skip

    paths = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, t in zip(paths, (table(0, -1), table(1, 1)), strict=True):
        path.write_text(json.dumps(t))
    result = table3_seeds.main([str(p) for p in paths])
    assert (result["same"], result["both_agree"], result["of"]) == (3, 3, 4)
    flipped = result["rows"][0]["bleu"]
    assert (flipped["first"], flipped["second"], flipped["same"]) == (-1, 1, False)
    assert "| A | heads1 | ↓ | ↑ | ↓ | ↑ | ↑ | ↑ |" in capsys.readouterr().out
    other = table(1, -1) | {"steps": 4000}
    paths[1].write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="differ in steps"):
        table3_seeds.main([str(p) for p in paths])
    for bad, says in (("not json", "not a JSON file"), ('{"rows": []}', "no field 'steps'")):
        paths[1].write_text(bad)
        with pytest.raises(SystemExit):
            table3_seeds.main([str(p) for p in paths])
        assert says in capsys.readouterr().err
