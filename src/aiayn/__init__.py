"""aiayn: the Transformer of "Attention Is All You Need", from first principles, made practical."""

import os

__version__ = "0.1.0"

# Large CPU tensors (logits, their log-softmax, gradients: tens of MB each step) on transparent
# huge pages: PyTorch then maps them with 512× fewer page faults, which made a bf16 training
# step of the Multi30k model 1.3× faster on our 2-core CPU (docs/benchmarks.md). PyTorch reads
# the variable at its first allocation, so it takes effect when aiayn is imported before torch
# (always so for the `aiayn` command). THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def translate(model, sentences, beam: int = 4, **kwargs):
    """Translate `sentences` with a model directory (or a model plus `tokenizers=`).

    `aiayn.translate("runs/multi30k", ["A man rides a bike."], beam=4)` → list of strings.
    See `aiayn.translator.translate` for every option.
    """
    from aiayn.translator import translate as _translate

    return _translate(model, sentences, beam=beam, **kwargs)


def generate(model, prompts, max_new_tokens: int = 256, **kwargs):
    """Continue `prompts` with a language-model directory (or a model plus `tokenizer=`).

    `aiayn.generate("runs/shakespeare", ["ROMEO:"], temperature=0.8, seed=1)` → list of strings.
    See `aiayn.generator.generate` for every option.
    """
    from aiayn.generator import generate as _generate

    return _generate(model, prompts, max_new_tokens=max_new_tokens, **kwargs)


def classify(model, texts, pairs=None, **kwargs):
    """Classify `texts` (or text pairs) with a fine-tuned classifier directory.

    `aiayn.classify("runs/sst2", ["a gripping film"])` → list of `Prediction(label, probs)`.
    See `aiayn.classifier.classify` for every option.
    """
    from aiayn.classifier import classify as _classify

    return _classify(model, texts, pairs, **kwargs)


def classify_images(model, paths, **kwargs):
    """Classify image files with an image classifier directory (`aiayn train image`).

    `aiayn.classify_images("runs/digits", ["three.png"])` → list of `Prediction(label, probs)`.
    See `aiayn.classifier.classify_images` for every option.
    """
    from aiayn.classifier import classify_images as _classify_images

    return _classify_images(model, paths, **kwargs)
