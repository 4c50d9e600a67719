"""Model directories saved by earlier aiayn versions load and translate identically.

`legacy_v1/` holds three directories written by aiayn at commit 8866238 (schema 1: a flat
config.json with no `arch`), with the logits and translations that version produced
(`HOW_MADE.txt` is the script). Random weights, scaled up so outputs are not uniform: the
point is bit-for-bit equality, not quality.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import aiayn
from aiayn.models import load_pretrained

LEGACY = Path(__file__).parent / "legacy_v1"
DIRS = sorted(p for p in LEGACY.iterdir() if p.is_dir())


def test_there_are_legacy_directories():
    assert len(DIRS) == 3


@pytest.mark.parametrize("directory", DIRS, ids=[d.name for d in DIRS])
def test_old_directory_gives_the_same_logits(directory):
    model = load_pretrained(directory)
    expected = load_file(directory / "expected_logits.safetensors")
    with torch.no_grad():
        logits = model(expected["src"], expected["tgt"])
    torch.testing.assert_close(logits, expected["logits"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("directory", DIRS, ids=[d.name for d in DIRS])
def test_old_directory_translates_identically(directory):
    expected = json.loads((directory / "expected_translations.json").read_text())
    sentences = expected["sentences"]
    assert aiayn.translate(directory, sentences, beam=1) == expected["greedy"]
    assert aiayn.translate(directory, sentences, beam=4) == expected["beam4"]
