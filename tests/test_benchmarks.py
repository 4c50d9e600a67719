"""The benchmark harness keeps running (a seconds-long smoke run) and counts FLOPs right."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from aiayn.decode.search import generate
from aiayn.models import DecoderOnly
from aiayn.models.info import estimate_flops
from aiayn.nn.dropout import Dropout
from aiayn.train.loss import label_smoothed_nll
from benchmarks.contenders import BOS, EOS, PAD, SIZES, aiayn_model, aiayn_torch_dropout_model
from benchmarks.lm import LM_SIZES, TRAIN_LEN, lm_forward_flops
from benchmarks.run import TABLE_HEADER, _jobs, parse_args
from benchmarks.translation import decode_flops

ROOT = Path(__file__).resolve().parent.parent


def training_step_flops(size: str) -> int:
    """The MFU numerator's FLOPs of one training step of SIZES[size] (benchmarks.training)."""
    dims = SIZES[size]
    return 3 * estimate_flops(dims.model_config(), dims.src_len, dims.tgt_len).forward * dims.batch


def lm_training_step_flops(size: str) -> int:
    """The same for one LM training step of LM_SIZES[size] (benchmarks.lm)."""
    dims = LM_SIZES[size]
    return 3 * lm_forward_flops(dims, TRAIN_LEN.get(size, dims.context)) * dims.batch


def assert_mfu(result: dict, step_flops: int, peak_tflops: float) -> None:
    """`result["mfu"]` is `step_flops` / its step time / the matmul peak, up to the report's
    rounding (step_ms to 0.01 ms, the peak to 0.001 TFLOP/s, MFU to 3 significant digits).
    Not bounded by 1: a peak probe slowed by a load burst can under-read on a busy machine."""
    ms, mfu = result["step_ms"], result["mfu"]
    high = step_flops / (max(ms - 0.005, 1e-6) * 1e-3 * max(peak_tflops - 5e-4, 1e-12) * 1e12)
    low = step_flops / ((ms + 0.005) * 1e-3 * (peak_tflops + 5e-4) * 1e12)
    assert low * (1 - 5e-3) <= mfu <= high * (1 + 5e-3), (result, step_flops, peak_tflops)


def test_smoke_run_measures_every_contender_and_records_a_row(tmp_path):
    record = tmp_path / "benchmarks.md"
    record.write_text("# Benchmarks\n\nSome text that must stay.\n")
    cmd = [sys.executable, "-m", "benchmarks.run", "--smoke", "--record", str(record)]
    cmd += ["--parts", "train", "translate", "attention", "optimizations"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)

    tiny = report["sizes"]["tiny"]
    for precision in ("fp32", "bf16"):
        by_name = tiny["training_tokens_per_s"][precision]
        assert set(by_name) == {"aiayn", "aiayn_sdpa", "hf_marian", "torch_transformer"}
        for r in by_name.values():
            assert r["tokens_per_s"] > 0 and r["peak_mem_mib"] >= 0
            assert_mfu(r, training_step_flops("tiny"), report["peak_matmul_tflops"][precision])
        # The same model: aiayn and Marian train exactly as many weights.
        assert by_name["aiayn"]["params"] == by_name["hf_marian"]["params"]
    for mode in ("greedy", "beam4"):
        by_name = tiny["translation_tokens_per_s"][mode]
        assert set(by_name) == {"aiayn", "hf_marian", "ctranslate2"}
        assert all(r["tokens_per_s"] > 0 for r in by_name.values())
    assert all(isinstance(v, float) for v in tiny["ratios"].values())
    optimizations = tiny["optimizations_bf16"]
    assert len(optimizations) >= 7
    assert optimizations["torch.nn.Dropout (vs aiayn's CPU mask)"]["tokens_per_s"] > 0
    assert set(tiny["optimizations_beam4_fp32"]) == {"default", "sdpa"}
    for by_impl in report["attention"]["by_seq_len"].values():
        assert set(by_impl) == {"math", "sdpa", "window"}
    assert [t["met"] for t in report["targets"]] == [None] * 6  # no multi30k/base in a smoke run

    text = record.read_text()
    assert text.startswith("# Benchmarks\n\nSome text that must stay.\n")
    assert text.count(TABLE_HEADER) == 1 and text.rstrip().splitlines()[-1].startswith("| ")
    assert "| tiny |" in text.splitlines()[-1]


@pytest.mark.parametrize(
    "slowdown, precisions", [(0.3, ["fp32", "bf16"]), (60.0, ["fp32"])], ids=["amx", "avx2"]
)
def test_bf16_rows_are_left_out_by_default_where_the_cpu_emulates_bf16(
    slowdown, precisions, monkeypatch
):
    from aiayn.train import precision

    monkeypatch.setattr(precision, "cpu_bf16_slowdown", lambda: slowdown)
    args = parse_args(["--device", "cpu"])
    assert args.precision == precisions
    trained = {key[2] for key, task, _ in _jobs(args) if task == "train"}
    peaks = {key[1] for key, task, _ in _jobs(args) if task == "peak"}
    assert trained == peaks == set(precisions)  # no MFU denominator for rows not timed
    # asked for by name, or in a smoke run's tiny rows, bf16 is timed anyway
    assert parse_args(["--device", "cpu", "--precision", "bf16"]).precision == ["bf16"]
    assert parse_args(["--device", "cpu", "--smoke"]).precision == ["fp32", "bf16"]
    # the attention part reports no MFU, so it measures no peak
    assert not [j for j in _jobs(parse_args(["--parts", "attention"])) if j[1] == "peak"]


def test_failed_measurement_fails_the_run_and_records_nothing(tmp_path):
    record = tmp_path / "benchmarks.md"
    cmd = [sys.executable, "-m", "benchmarks.run", "--size", "tiny", "--parts", "attention"]
    cmd += ["--seq-lens", "8", "--window", "-1", "--reps", "1", "--record", str(record)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "window" in proc.stderr
    assert not record.exists()


def test_the_training_mfu_numerator_is_the_flop_counters_count_of_a_step():
    """3 × forward FLOPs is exact, not a rule of thumb: torch's FLOP counter counts one whole
    training step (forward, loss, backward) of each tiny model as the numerator the harness
    divides by the step time. Math attention: the counter does not count CPU SDPA kernels."""
    dims = SIZES["tiny"]
    model = aiayn_model(dims, attention_impl="math")[0]
    src = torch.randint(3, dims.vocab, (dims.batch, dims.src_len))
    tgt = torch.randint(3, dims.vocab, (dims.batch, dims.tgt_len + 1))
    with FlopCounterMode(display=False) as counter:
        label_smoothed_nll(model(src, tgt[:, :-1]), tgt[:, 1:], 0.1, PAD).loss.backward()
    assert counter.get_total_flops() == training_step_flops("tiny")

    lm = LM_SIZES["tiny"]
    model = DecoderOnly(lm.config().replace(attention_impl="math")).train()
    ids = torch.randint(3, lm.vocab, (lm.batch, TRAIN_LEN.get("tiny", lm.context) + 1))
    with FlopCounterMode(display=False) as counter:
        logits = model(ids[:, :-1])  # (B, T, V)
        F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
    assert counter.get_total_flops() == lm_training_step_flops("tiny")


def test_decode_flops_equals_the_flop_counter_for_greedy_decoding():
    dims = SIZES["tiny"]
    # The math path: torch's FLOP counter does not count the CPU flash-attention kernel.
    model = aiayn_model(dims, attention_impl="math")[0].eval()
    src = torch.randint(4, dims.vocab, (dims.translate_batch, dims.translate_src_len))
    L = dims.translate_out_len
    with FlopCounterMode(display=False) as counter:
        generate(model, src, BOS, EOS, beam_size=1, max_len=L, min_len=L)
    assert counter.get_total_flops() == decode_flops(dims, beam=1)


@pytest.mark.parametrize(
    "compare, names",
    [
        ("allocator", {"glibc default", "keep freed memory"}),
        ("dropout", {"torch.nn.Dropout", "aiayn.nn.Dropout"}),
        ("precision", {"fp32", "bf16 autocast"}),
    ],
)
def test_trainer_step_benchmark_times_both_settings_on_changing_shapes(compare, names):
    from benchmarks.trainer_steps import MAX_TOKENS, batch_shapes

    shapes = batch_shapes(50)
    assert len({(b, s, t) for b, s, t in shapes}) > 10  # shapes really change step to step
    assert all(b * max(s, t) <= MAX_TOKENS for b, s, t in shapes)
    cmd = [sys.executable, "-m", "benchmarks.trainer_steps", "--size", "tiny", "--compare", compare]
    proc = subprocess.run(
        [*cmd, "--steps", "2", "--warmup", "1"], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["compare"] == compare and set(report["results"]) == names
    assert all(r["tokens_per_s"] > 0 for r in report["results"].values())
    assert report["speedup"] > 0


@pytest.mark.parametrize(
    "compare, key, first, second",
    [("dropout", "torch_dropout", True, False), ("precision", "precision", "fp32", "bf16")],
)
def test_a_comparison_differs_in_its_one_setting_only(compare, key, first, second):
    from benchmarks.trainer_steps import COMPARISONS

    spec_1, spec_2 = COMPARISONS[compare].values()
    assert spec_1[key] == first and {**spec_1, key: second} == spec_2


def test_the_torch_dropout_contender_is_aiayn_with_every_dropout_swapped():
    ours, _ = aiayn_model(SIZES["tiny"])
    swapped, _ = aiayn_torch_dropout_model(SIZES["tiny"])
    ours_p = [m.p for m in ours.modules() if isinstance(m, Dropout)]
    assert 0.1 in ours_p and not any(isinstance(m, Dropout) for m in swapped.modules())
    # the same rates in the same places (the FFN's activation dropout is there at p = 0)
    assert [m.p for m in swapped.modules() if isinstance(m, torch.nn.Dropout)] == ours_p


def test_marian_from_aiayn_computes_the_same_function():
    """The real-sentence benchmark's HF contender is the same network: equal logits on a padded
    batch (and not by accident: without our position table they differ)."""
    from aiayn.config import ModelConfig
    from aiayn.models import EncoderDecoder
    from benchmarks.contenders import marian_from_aiayn

    torch.manual_seed(0)
    cfg = ModelConfig.create(
        src_vocab_size=50, tgt_vocab_size=50, d_model=32, n_heads=4, d_ff=64,
        n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, max_len=32, layer_norm_eps=1e-3,
    )  # fmt: skip
    model = EncoderDecoder(cfg).eval()
    with torch.no_grad():  # biases and norms away from their defaults: a mix-up shows
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    hf = marian_from_aiayn(model)
    src = torch.randint(4, 50, (3, 9))
    src[:, -1] = EOS
    src[1, 5], src[1, 6:] = EOS, PAD
    tgt = torch.randint(4, 50, (3, 7))
    tgt[:, 0] = BOS
    with torch.no_grad():
        ours = model(src, tgt)
        theirs = hf(input_ids=src, attention_mask=src != PAD, decoder_input_ids=tgt).logits
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
        hf.model.decoder.embed_positions.weight.zero_()
        moved = hf(input_ids=src, attention_mask=src != PAD, decoder_input_ids=tgt).logits
    assert (moved - ours).abs().max() > 0.1
    with pytest.raises(ValueError, match="paper's encoder-decoder"):
        marian_from_aiayn(EncoderDecoder(ModelConfig.create(
            src_vocab_size=50, tgt_vocab_size=50, d_model=32, n_heads=4, d_ff=64,
            n_encoder_layers=1, n_decoder_layers=1, norm_first=True,
        )))  # fmt: skip


def test_lm_smoke_run_times_both_contenders_on_the_same_model():
    cmd = [sys.executable, "-m", "benchmarks.run", "--smoke", "--parts", "lm", "--no-record"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    lm = report["lm"]["tiny"]
    for precision in ("fp32", "bf16"):
        by_name = lm["training_tokens_per_s"][precision]
        assert set(by_name) == {"aiayn", "hf_gpt2"}
        assert by_name["aiayn"]["params"] == by_name["hf_gpt2"]["params"]  # the same model
        for r in by_name.values():
            assert r["tokens_per_s"] > 0
            assert_mfu(r, lm_training_step_flops("tiny"), report["peak_matmul_tflops"][precision])
    assert set(lm["generation_tokens_per_s"]) == {"greedy_b1", "greedy_b16", "sample_b1",
                                                  "sample_b16"}  # fmt: skip
    assert all(isinstance(v, float) for v in lm["ratios"].values()) and len(lm["ratios"]) == 6


def test_bert_smoke_run_times_both_contenders_on_the_same_model():
    cmd = [sys.executable, "-m", "benchmarks.run", "--smoke", "--parts", "bert", "--no-record"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from aiayn.models.info import estimate_encoder_flops
    from benchmarks.bert import BERT_SIZES

    report = json.loads(proc.stdout)
    bert, dims = report["bert"]["tiny"], BERT_SIZES["tiny"]
    step_flops = 3 * estimate_encoder_flops(dims.config(), dims.seq_len).forward * dims.batch
    for precision in ("fp32", "bf16"):
        by_name = bert["training_tokens_per_s"][precision]
        assert set(by_name) == {"aiayn", "hf_bert"}
        assert by_name["aiayn"]["params"] == by_name["hf_bert"]["params"]  # the same model
        for r in by_name.values():
            assert r["tokens_per_s"] > 0
            assert_mfu(r, step_flops, report["peak_matmul_tflops"][precision])
    assert set(bert["classify_sentences_per_s"]) == {"aiayn", "hf_bert"}
    assert all(isinstance(v, float) for v in bert["ratios"].values()) and len(bert["ratios"]) == 3


def test_bert_contenders_compute_the_same_function():
    """The HF BERT built for a row computes what aiayn's does once given the same weights,
    so the harness compares like with like."""
    from aiayn.models.convert import from_hf_bert
    from benchmarks.bert import BERT_SIZES, build, masked_batch

    dims = BERT_SIZES["tiny"]
    hf = build("hf_bert", dims).eval()
    ours = from_hf_bert(hf)
    assert ours.config.layer == build("aiayn", dims).config.layer  # same switches and sizes
    inputs, segments, _ = masked_batch(dims, "cpu")
    with torch.no_grad():
        expected = hf(input_ids=inputs, token_type_ids=segments).logits
        torch.testing.assert_close(ours(inputs, segments), expected, atol=1e-4, rtol=1e-4)


def test_lm_run_summary_counts_tokens_from_the_runs_own_configs(tmp_path, capsys):
    from benchmarks import lm_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "task_config.json").write_text(json.dumps({"task": "lm", "batch_size": 4}))
    (run / "config.json").write_text(json.dumps({"max_len": 32}))
    (run / "train_config.json").write_text(json.dumps({"update_freq": 2}))
    records = [
        {"split": "start", "step": 0},
        {"split": "train", "step_window": 10, "loss": 3.0},
        {"split": "valid", "step": 10, "loss": 2.0, "bpc": 2.9, "minutes": 1.0},
        {"split": "train", "step_window": 10, "loss": 1.6},
        {"split": "valid", "step": 20, "loss": 1.5, "bpc": 2.2, "minutes": 2.0},
        {"split": "train", "step_window": 10, "loss": 1.4},
        {"split": "valid", "step": 30, "loss": 1.55, "bpc": 2.3, "minutes": 3.0},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    png = tmp_path / "c.png"
    assert lm_run.main(["--run", str(run), "--target", "1.6", "--png", str(png)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["tokens_per_step"] == 4 * 32 * 2
    assert (got["steps"], got["tokens"], got["last_loss"]) == (30, 30 * 256, 1.55)
    assert (got["best_loss"], got["best_step"], got["best_tokens"]) == (1.5, 20, 20 * 256)
    assert got["target_met_at_tokens"] == 20 * 256
    assert png.read_bytes()[:4] == b"\x89PNG"
