"""Tiny random model directories of every family, as `aiayn attention` reads them (no training:
the explorer shows whatever the weights are). Their queries are scaled up, so that attention is
peaked, as in trained models, and its weights span many magnitudes, not all near 1/T."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aiayn.config import DecoderOnlyConfig, ModelConfig
from aiayn.data.image_transforms import Normalization
from aiayn.data.labelled import LabelSet, save_labels
from aiayn.models import presets
from aiayn.models.decoder_only import DecoderOnly
from aiayn.models.encoder_decoder import EncoderDecoder
from aiayn.models.encoder_only import EncoderOnly
from aiayn.models.serialization import save_pretrained
from aiayn.models.vision import VisionTransformer
from aiayn.nn.attention import MultiHeadAttention
from aiayn.tokenizers import TokenizerPair, train_bpe
from aiayn.tokenizers.bert import train_bert_tokenizer_on_texts
from aiayn.tokenizers.char import CharTokenizer

LINES = ["ein kleiner Hund läuft", "zwei Männer spielen Fußball", "a small dog runs"] * 20
TEXT = "a small dog runs"
PAIR = "ein kleiner Hund"


def peaked(model: torch.nn.Module, scale: float = 6.0) -> torch.nn.Module:
    """`model` with every W_Q multiplied by `scale` (sharper softmax), in eval mode. GPT's,
    BERT's and ViT's initialisation (N(0, 0.02²)) needs a larger scale than Xavier's."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, MultiHeadAttention):
                module.w_q.weight.mul_(scale)
    return model.eval()


def translation_dir(root: Path) -> Path:
    tokenizers = TokenizerPair.shared(train_bpe(iter(LINES), vocab_size=300))
    cfg = ModelConfig.create(
        src_vocab_size=tokenizers.source.vocab_size, tgt_vocab_size=tokenizers.target.vocab_size,
        d_model=32, n_heads=4, d_ff=64, n_encoder_layers=2, n_decoder_layers=2, max_len=16,
    )  # fmt: skip
    torch.manual_seed(0)
    directory = root / "translation"
    save_pretrained(peaked(EncoderDecoder(cfg)), directory)
    tokenizers.save(directory)
    return directory


def lm_dir(root: Path) -> Path:
    tokenizer = CharTokenizer.train(LINES)
    cfg = DecoderOnlyConfig.create(
        vocab_size=tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=4, d_ff=64, max_len=64,
        dropout=0.0, norm_first=True,
    )  # fmt: skip
    torch.manual_seed(0)
    directory = root / "lm"
    save_pretrained(peaked(DecoderOnly(cfg), 30.0), directory)
    tokenizer.save(directory)
    return directory


def bert_dir(root: Path) -> Path:
    tokenizer = train_bert_tokenizer_on_texts(LINES, vocab_size=120)
    cfg = presets.bert_tiny(tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=4, d_ff=64,
                            max_len=48, num_labels=2)  # fmt: skip
    torch.manual_seed(0)
    directory = root / "bert"
    save_pretrained(peaked(EncoderOnly(cfg), 60.0), directory)
    tokenizer.save(directory)
    save_labels(LabelSet(("no", "yes")), directory)
    return directory


def vision_dir(root: Path, mixer: str = "attention") -> Path:
    pooling = "cls" if mixer == "attention" else "mean"
    cfg = presets.vit_tiny(
        image_size=8, patch_size=2, channels=1, n_layers=2, d_model=16, n_heads=2, d_ff=32,
        num_labels=3, mixer=mixer, pooling=pooling,
    )  # fmt: skip
    torch.manual_seed(0)
    directory = root / ("vit" if mixer == "attention" else "poolformer")
    save_pretrained(peaked(VisionTransformer(cfg), 60.0), directory)
    Normalization(8, (0.5,), (0.25,)).save(directory)
    save_labels(LabelSet(("a", "b", "c")), directory)
    return directory


def image_file(root: Path) -> Path:
    from PIL import Image

    pixels = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).astype(np.uint8)  # a gradient
    path = root / "digit.png"
    Image.fromarray(pixels, mode="L").save(path)
    return path


def all_dirs(root: Path) -> dict[str, tuple[Path, dict]]:
    """{family: (model directory, explore() keyword arguments)}."""
    image = image_file(root)
    return {
        "translation": (translation_dir(root), {"text": TEXT}),
        "lm": (lm_dir(root), {"text": TEXT}),
        "bert": (bert_dir(root), {"text": TEXT, "pair": PAIR}),
        "vit": (vision_dir(root), {"image": image}),
        "poolformer": (vision_dir(root, "pooling"), {"image": image}),
    }
