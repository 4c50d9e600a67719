"""The attention explorer (`aiayn attention`): the maps it shows are the model's attention
(shapes, rows summing to 1, padding and the future hidden), computed by a reference path whose
outputs equal the fast path's; the beam tree's winner is what `aiayn translate` outputs and
every pruned hypothesis says why; the command writes its files, or one line on bad input."""

from __future__ import annotations

import re

import pytest
import torch

import aiayn
from aiayn.cli import main
from aiayn.decode.beam_tree import BeamTree
from aiayn.decode.search import beam_search
from aiayn.models.serialization import load_pretrained
from aiayn.nn.attention import MultiHeadAttention
from aiayn.nn.trace import shape_trace
from aiayn.visualize.explorer import attention_maps, explore, passes
from aiayn.visualize.explorer_page import PAGE_NAME, render_page
from explorer_models import TEXT, all_dirs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REASONED = {"pruned", "outranked", "stopped", "finished", "winner"}


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return all_dirs(tmp_path_factory.mktemp("explorer"))


@pytest.fixture(scope="module")
def explorations(dirs):
    return {family: explore(d, **kwargs) for family, (d, kwargs) in dirs.items()}


def _layers_heads(config) -> tuple[int, int]:
    layers = getattr(config, "n_layers", None) or config.n_encoder_layers
    return layers, config.n_heads


def test_maps_are_layers_by_heads_by_tokens_and_rows_sum_to_one(dirs, explorations):
    expected_kinds = {
        "translation": ["encoder_self", "decoder_self", "decoder_cross"],
        "lm": ["causal_self"],
        "bert": ["self"],
        "vit": ["self"],
        "poolformer": ["pooling"],
    }
    for family, e in explorations.items():
        assert [k.key for k in e.kinds] == expected_kinds[family], family
        config = load_pretrained(dirs[family][0]).config
        L, H = _layers_heads(config)
        for kind in e.kinds:
            heads = 1 if kind.key == "pooling" else H  # pooling has one fixed map per layer
            assert kind.weights.shape == (L, heads, len(kind.queries), len(kind.keys)), family
            assert (kind.weights >= 0).all()
            rows = kind.weights.sum(dim=-1)
            torch.testing.assert_close(rows, torch.ones_like(rows), atol=1e-5, rtol=0)


def test_inputs_become_the_tokens_shown(explorations):
    translation = explorations["translation"]
    source = translation.kinds[0].keys
    assert source[-1] == "</s>" and len(source) > 2
    cross = translation.kinds[2]
    assert cross.keys == source and cross.queries[0] == "<s>"
    bert = explorations["bert"].kinds[0].keys
    assert bert[0] == "[CLS]" and bert.count("[SEP]") == 2  # text and pair
    lm = explorations["lm"].kinds[0].keys  # the start token, then one character a token
    assert lm[0] and "".join(lm[1:]) == TEXT.replace(" ", "▁")
    vit = explorations["vit"]
    assert vit.kinds[0].keys[0] == "[CLS]" and len(vit.kinds[0].keys) == 1 + 16
    assert vit.rollout.shape == (4, 4) and float(vit.rollout.max()) == pytest.approx(1.0)
    assert vit.image.shape == (1, 8, 8) and vit.image.dtype == torch.uint8


def test_padding_keys_get_zero_weight(dirs):
    translator = load_pretrained(dirs["translation"][0])
    pad = translator.config.pad_id
    src = torch.tensor([[5, 6, 7, 8, 2], [5, 6, 2, pad, pad]])  # (2, 5): row 1 padded
    tgt = torch.tensor([[1, 9, 10], [1, 9, 10]])  # (2, 3)
    maps, _ = attention_maps(translator, (src, tgt))
    for key in ("encoder_self", "decoder_cross"):
        for w in maps[key]:  # (B, H, T, S)
            assert (w[1, :, :, 3:] == 0).all(), key  # the padded keys: exactly zero
            assert (w[1, :, :, :3] > 0).all(), key  # every real key: some weight
    bert = load_pretrained(dirs["bert"][0])
    ids = torch.tensor([[2, 10, 11, 3], [2, 10, 3, bert.config.pad_id]])  # (2, 4)
    maps, _ = attention_maps(bert, (ids, None))
    for w in maps["self"]:
        assert (w[1, :, :, 3] == 0).all()


def test_causal_maps_are_zero_above_the_diagonal(explorations):
    for family, key in (("translation", "decoder_self"), ("lm", "causal_self")):
        w = next(k for k in explorations[family].kinds if k.key == key).weights  # (L, H, T, T)
        T = w.shape[-1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        assert T > 2 and (w[..., future] == 0).all(), family
        assert (w[..., ~future] > 0).all(), family  # the past and itself: all visible


def test_the_reference_path_reproduces_the_fast_path(dirs, explorations):
    for family, e in explorations.items():
        assert e.parity, family  # every block compared
        assert max(diff for _, diff in e.parity) < 1e-5, (family, e.parity)
    # and "fast" really is SDPA in every attention layer, "reference" the written-out softmax
    ids = torch.tensor([[2, 5, 6, 7, 3]])  # (1, 5)
    inputs = {
        "translation": (ids, torch.tensor([[1, 9, 10]])),
        "lm": (ids,),
        "bert": (ids, torch.zeros_like(ids)),
        "vit": (torch.randn(1, 1, 8, 8),),
    }
    for family, args in inputs.items():
        model = load_pretrained(dirs[family][0])
        fast, reference = passes(model, args)
        with torch.inference_mode(), shape_trace(model) as steps:
            fast()
        attentions = sum(isinstance(m, MultiHeadAttention) for m in model.modules())
        assert sum("fused SDPA" in s.name for s in steps) == attentions, family
        assert not any(s.name == "weights softmax(scores)" for s in steps), family
        with torch.inference_mode(), shape_trace(model) as steps:
            reference()
        assert sum(s.name == "weights softmax(scores)" for s in steps) == attentions, family
    translator = load_pretrained(dirs["translation"][0])
    with torch.inference_mode():
        maps = translator.attention_maps(*inputs["translation"])
        torch.testing.assert_close(maps.logits, translator(*inputs["translation"]))


def test_a_broken_reference_path_shows_in_the_parity(dirs):
    """The parity numbers are a real check: perturb one block in the weights pass only."""
    model = load_pretrained(dirs["lm"][0])
    ids = torch.tensor([[1, 5, 6, 7]])
    block = model.decoder.layers[1]
    original = block.forward

    def skewed(*args, need_weights=False, **kwargs):
        out = original(*args, need_weights=need_weights, **kwargs)
        return (out[0] + 1e-3, *out[1:]) if need_weights else out

    block.forward = skewed
    _, parity = attention_maps(model, (ids,))
    assert dict(parity)["decoder.layers.0"] < 1e-5 and dict(parity)["decoder.layers.1"] > 5e-4


def test_the_beam_trees_winner_is_what_translate_outputs(dirs, explorations):
    directory, kwargs = dirs["translation"]
    e = explorations["translation"]
    assert aiayn.translate(directory, [kwargs["text"]], beam=4)[0] in e.summary[1]
    winners = [n for n in e.beam if n["status"] == "winner"]
    assert len(winners) == 1
    for node in e.beam:
        assert node["reason"], node  # pruned or kept, every node says why
        if node["status"] in REASONED:
            assert node["score"] is not None or node["status"] in ("pruned", "stopped")
    by_id = {n["id"]: n for n in e.beam}
    for node in e.beam:  # only live hypotheses have children
        if node["parent"] is not None:
            assert by_id[node["parent"]]["status"] == "live"


@pytest.mark.parametrize(("beam", "alpha", "max_len"), [(1, 0.0, 8), (3, 0.6, 12), (5, 1.0, 16)])
def test_recording_changes_nothing_and_the_tree_matches_the_search(dirs, beam, alpha, max_len):
    model = load_pretrained(dirs["translation"][0])
    torch.manual_seed(1)
    src = torch.randint(4, model.config.src_vocab_size, (3, 6))  # (3, 6)
    src[:, -1] = 2
    tree = BeamTree()
    recorded = beam_search(model, src, 1, 2, beam, alpha, max_len=max_len, n_best=beam,
                           recorder=tree)  # fmt: skip
    plain = beam_search(model, src, 1, 2, beam, alpha, max_len=max_len, n_best=beam)
    assert recorded == plain
    statuses = {n.status for n in tree.nodes}
    assert statuses <= {"live", "finished", "pruned", "outranked", "stopped", "winner"}
    for b in range(3):
        winner = tree.winner(b)
        assert tree.path(winner) == plain[b][0].tokens
        assert winner.score == pytest.approx(plain[b][0].score, abs=1e-5)
        finished = sorted(
            (n for n in tree.nodes if n.sentence == b and n.status in ("finished", "winner")),
            key=lambda n: -n.score,
        )
        assert [tree.path(n) for n in finished] == [h.tokens for h in plain[b]]  # the n-best
    for node in tree.nodes:
        if node.status in ("pruned", "outranked", "stopped"):
            assert re.search(r"top \d|</s>|outranked|cannot|stopped", node.reason), node


def test_pooling_is_shown_as_its_fixed_averaging_weights(explorations):
    w = explorations["poolformer"].kinds[0].weights  # (L, 1, 16, 16) over a 4×4 grid
    torch.testing.assert_close(w[0], w[1])  # the same in every layer
    corner = w[0, 0, 0].reshape(4, 4)  # token (0, 0): a 3×3 window holds 4 cells of the grid
    assert torch.allclose(corner[:2, :2], torch.full((2, 2), 0.25)) and corner.sum() == 1
    assert torch.allclose(w[0, 0, 5].reshape(4, 4)[:3, :3], torch.full((3, 3), 1 / 9))


def test_the_cli_writes_the_pngs_and_the_page_for_every_family(dirs, tmp_path, capsys):
    for family, (directory, kwargs) in dirs.items():
        out = tmp_path / family
        flags = [f"--{k}={v}" for k, v in kwargs.items()]
        assert main(["attention", "--model", str(directory), *flags, "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"wrote {out / PAGE_NAME}" in printed
        pngs = sorted(p.name for p in out.glob("*.png"))
        expected = {
            "translation": ["decoder_cross.png", "decoder_self.png", "encoder_self.png"],
            "lm": ["causal_self.png"],
            "bert": ["self.png"],
            "vit": ["rollout.png", "self.png"],
            "poolformer": ["pooling.png"],
        }[family]
        assert pngs == expected, family
        for png in out.glob("*.png"):
            assert png.read_bytes()[:8] == PNG_MAGIC
        assert (out / PAGE_NAME).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("family", "args", "message"),
    [
        (None, ["--model", "{tmp}/nowhere", "--text", "x"], "nowhere: no such model directory"),
        ("translation", ["--image", "{tmp}/a.png"], "--image: {dir} is a text model"),
        ("translation", [], "--text: give a non-empty text"),
        ("lm", ["--text", "a", "--pair", "b"], "--pair applies to encoder-only"),
        ("vit", ["--text", "a"], "is an image classifier: give --image"),
        ("vit", ["--image", "{tmp}/missing.png"], "missing.png: no such image file"),
    ],
)
def test_bad_input_ends_with_one_line_naming_the_mistake(
    dirs, tmp_path, capsys, family, args, message
):
    directory = dirs[family][0] if family else None
    fill = {"tmp": tmp_path, "dir": directory}
    argv = ["attention", *(["--model", str(directory)] if directory else [])]
    argv += [a.format(**fill) for a in args] + ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message.format(**fill) in err
    assert not (tmp_path / "out").exists()


def test_the_page_loads_nothing_from_the_network(explorations):
    for family, e in explorations.items():
        html = render_page(e)
        assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.I), family  # scripts inline
        assert not re.search(r"<link\b", html, re.I), family  # styles inline
        assert not re.search(r"(@import|url\()\s*['\"]?https?:", html, re.I), family
        assert not re.search(r"(src|href)\s*=\s*['\"]?https?:", html, re.I), family
        assert "__DATA__" not in html and '<script id="data" type="application/json">' in html


def test_the_installed_command_reports_a_missing_model_in_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "aiayn", "attention", "--model", str(tmp_path / "none"),
         "--text", "x", "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == f"aiayn attention: error: {tmp_path / 'none'}: no such model directory\n"


def test_every_flag_says_what_it_does():
    from aiayn.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub.choices["attention"]._actions:
        assert action.help, action.option_strings
