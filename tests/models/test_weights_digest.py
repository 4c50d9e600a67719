"""Weights checksums: every model.safetensors aiayn writes carries a digest of its tensors in
its own metadata, checked on load; older files without one load unchecked."""

import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from aiayn.errors import ConfigError
from aiayn.models import EncoderDecoder, load_pretrained, save_pretrained
from aiayn.models.serialization import (
    DIGEST_KEY,
    WEIGHTS_NAME,
    save_weights,
    verify_weights,
    weights_digest,
)

from conftest import small_config

LEGACY = sorted(p for p in (Path(__file__).parent / "legacy_v1").iterdir() if p.is_dir())


def stored_digest(path):
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get(DIGEST_KEY)


def flip_a_data_byte(path, where=0.5):
    """Flip one bit inside the tensor data (past the JSON header), as a bad copy would."""
    raw = bytearray(path.read_bytes())
    (header,) = struct.unpack("<Q", raw[:8])
    start = 8 + header
    i = start + int((len(raw) - start) * where)
    raw[i] ^= 0x10
    path.write_bytes(bytes(raw))


def test_save_pretrained_stores_the_digest_of_the_tensors_written(tmp_path):
    model = EncoderDecoder(small_config())  # tied embeddings: one matrix stored once
    save_pretrained(model, tmp_path)
    path = tmp_path / WEIGHTS_NAME
    tensors = load_file(str(path))
    assert stored_digest(path) == weights_digest(tensors)
    assert verify_weights(path) is True
    again = load_pretrained(tmp_path)
    for name, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], value), name


@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_a_flipped_byte_in_the_weights_is_a_clear_error(tmp_path, where):
    save_pretrained(EncoderDecoder(small_config()), tmp_path)
    path = tmp_path / WEIGHTS_NAME
    flip_a_data_byte(path, where)
    with pytest.raises(ConfigError, match="weights are corrupt: checksum mismatch") as err:
        load_pretrained(tmp_path)
    assert str(path) in str(err.value) and "re-copy or re-export" in str(err.value)


def test_the_digest_depends_on_values_names_dtypes_and_shapes_not_layout(tmp_path):
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    base = weights_digest({"a": a, "b": torch.ones(2)})
    # insertion order and memory layout (a transposed copy made contiguous) do not matter
    assert weights_digest({"b": torch.ones(2), "a": a.t().contiguous().t()}) == base
    assert weights_digest({"a": a, "b": torch.ones(2)}) == base
    changed = [
        {"a": a.reshape(4, 3), "b": torch.ones(2)},  # same bytes, another shape
        {"a": a.to(torch.int32).view(torch.float32), "b": torch.ones(2)},  # other values
        {"c": a, "b": torch.ones(2)},  # another name
        {"a": a.view(torch.int32), "b": torch.ones(2)},  # same bytes, another dtype
    ]
    assert len({base, *map(weights_digest, changed)}) == 5
    # and the file written from a dict holds the dict's digest, whatever order it lays out
    save_weights({"b": torch.ones(2), "a": a}, tmp_path / "w.safetensors")
    assert stored_digest(tmp_path / "w.safetensors") == base


def test_files_without_a_digest_load_unchecked(tmp_path):
    model = EncoderDecoder(small_config())
    save_pretrained(model, tmp_path)
    path = tmp_path / WEIGHTS_NAME
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        aliases = {k: v for k, v in (f.metadata() or {}).items() if k != DIGEST_KEY}
    save_file(tensors, str(path), metadata=aliases)  # as aiayn wrote them before the digest
    assert stored_digest(path) is None and verify_weights(path) is False
    again = load_pretrained(tmp_path).state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(again[name], value), name


@pytest.mark.parametrize("directory", LEGACY, ids=[d.name for d in LEGACY])
def test_legacy_directories_have_no_digest_and_still_load(directory):
    """(Their logits and translations are checked bit for bit in test_legacy_directories.)"""
    assert verify_weights(directory / WEIGHTS_NAME) is False
    load_pretrained(directory)
