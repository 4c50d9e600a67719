"""benchmarks/real_sentences.py runs end to end on a few Multi30k test sentences (seconds)."""

from __future__ import annotations

import pytest
import torch

from aiayn.config import ModelConfig
from aiayn.models import EncoderDecoder, save_pretrained
from aiayn.tokenizers import TokenizerPair, train_bpe

from conftest import SHARED

DATA = SHARED / "data" / "multi30k"
pytestmark = pytest.mark.skipif(
    not (DATA / "test_2016_flickr.en.gz").exists(),
    reason=f"Multi30k test_2016_flickr not found under {DATA} (the benchmark's data)",
)


def tiny_model_dir(path, lines: list[str]) -> None:
    """A random 1+1-layer model with a 300-token BPE of `lines`, saved as a model directory."""
    tokenizers = TokenizerPair.shared(train_bpe(iter(lines), vocab_size=300))
    torch.manual_seed(0)
    cfg = ModelConfig.create(
        src_vocab_size=tokenizers.source.vocab_size, tgt_vocab_size=tokenizers.target.vocab_size,
        d_model=32, n_heads=2, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_len=24,
    )  # fmt: skip
    save_pretrained(EncoderDecoder(cfg).eval(), path)
    tokenizers.save(path)


def test_every_contender_translates_the_same_sentences(tmp_path):
    pytest.importorskip("ctranslate2")
    from benchmarks.real_sentences import measure, read_pairs

    src, ref = read_pairs(DATA, n=6)
    tiny_model_dir(tmp_path, src + ref)
    names = ["aiayn", "aiayn@HEAD", "ctranslate2", "aiayn_int8", "ctranslate2_int8",
             "aiayn_k_finished", "hf_marian"]  # fmt: skip
    report = measure(str(tmp_path), src, ref, beams=[1, 2], rounds=1, threads=1, contenders=names)
    greedy = report["by_beam"]["beam1"]["contenders"]
    # greedy: the same tokens as CTranslate2, HF on the same weights, the committed decoding
    # code, and the k_finished rule (which only beam search reads)
    for name in ("ctranslate2", "aiayn@HEAD", "hf_marian", "aiayn_k_finished"):
        assert greedy[name]["same_as_aiayn"] == 1.0, name
    for beam in report["by_beam"].values():
        assert set(beam["contenders"]) == set(names)
        assert all(row["sentences_per_s"] > 0 for row in beam["contenders"].values())
        assert "aiayn_vs_ctranslate2" in beam["ratios"]


def test_isolated_contenders_run_in_processes_of_their_own(tmp_path):
    """--isolate: each contender in a fresh process, taking turns; speeds and ratios only."""
    pytest.importorskip("ctranslate2")
    from benchmarks.real_sentences import main, read_pairs

    src, ref = read_pairs(DATA, n=6)
    tiny_model_dir(tmp_path, src + ref)
    report = main([
        "--model", str(tmp_path), "--data", str(DATA), "--sentences", "6", "--beams", "1",
        "--rounds", "2", "--threads", "1", "--isolate", "--contenders", "aiayn", "ctranslate2",
    ])  # fmt: skip
    greedy = report["by_beam"]["beam1"]
    assert report["isolated"] is True
    for name in ("aiayn", "ctranslate2"):
        assert len(greedy["contenders"][name]["rounds"]) == 2
        assert greedy["contenders"][name]["sentences_per_s"] > 0
    assert greedy["ratios"]["aiayn_vs_ctranslate2"] > 0
