"""Why do Q and K come from different projections — why not dot x with itself? (QUESTIONS.md 2)

    python -m experiments.qk_tied --out docs/why     # 8.4 minutes on 1 of 2 shared CPU cores

The same encoder-decoder (2+2 layers, d_model 128, 4 heads) trained on the number-words task
(English number words to German, test numbers never seen in training) for the same number of
steps, with separate W_Q and W_K (the paper) and with W_K = W_Q in every self-attention (the
module shared: `attn.w_k = attn.w_q`, so one matrix, trained once). Cross-attention stays
untied: its queries and keys come from different sequences anyway.

Why tying hurts is linear algebra: with one projection, the scores QKᵀ = (XW)(XW)ᵀ are a Gram
matrix — symmetric (i attends to j as much as j to i) and positive semi-definite, so a token's
score with itself, ‖q_i‖², is at least the smaller of any pair's (Cauchy–Schwarz): attention is
pulled to the diagonal. Measured: the attention weight each real token puts on itself (and
how often itself is its top key), per layer, at initialisation and after training, beside the
uniform share 1/length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aiayn.models.encoder_decoder import EncoderDecoder
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import (
    fresh_data,
    greedy_exact_match,
    last_valid,
    read_split,
    small_model,
    teacher_batch,
    trained_model,
    valid_loss_panel,
)

VARIANTS = ("separate", "tied")


def tie_query_key(model: EncoderDecoder) -> None:
    """W_K := W_Q (the same module) in every self-attention of both stacks."""
    for stack in (model.encoder, model.decoder):
        for block in stack.layers:
            block.self_attn.w_k = block.self_attn.w_q


def _self_share(weights: Tensor, real: Tensor) -> tuple[float, float, float]:
    """The mean weight on the diagonal, the fraction of queries whose top key is themselves,
    and the uniform share 1/(keys visible), over real query positions.

    Shape: weights (B, H, T, T), real (B, T) bool.
    """
    T = weights.shape[-1]
    diag = weights.diagonal(dim1=-2, dim2=-1)  # (B, H, T)
    top = weights.argmax(-1) == torch.arange(T)  # (B, H, T)
    visible = (weights > 0).sum(-1).float()  # (B, H, T) keys the query may see
    q = real[:, None, :].expand_as(diag)  # (B, H, T)
    return (
        float(diag[q].mean()),
        float(top[q].float().mean()),
        float((1 / visible.clamp_min(1))[q].mean()),
    )


@torch.no_grad()
def diagonal_share(model: EncoderDecoder, src: Tensor, tgt_in: Tensor) -> dict[str, list]:
    """Per layer of the encoder's and the decoder's self-attention: (self weight, self is
    top, uniform share). Shape: src (B, S), tgt_in (B, T)."""
    model.eval()
    maps = model.attention_maps(src, tgt_in)
    pad = model.config.pad_id
    return {
        "encoder": [_self_share(w, src != pad) for w in maps.encoder_self],
        "decoder": [_self_share(w, tgt_in != pad) for w in maps.decoder_self],
    }


@torch.no_grad()
def score_symmetry(model: EncoderDecoder, src: Tensor) -> float:
    """max |S − Sᵀ| / max |S| of the first encoder layer's raw scores QKᵀ (0 when tied)."""
    attn = model.encoder.layers[0].self_attn
    x = model.encoder.positional.embed(model.encoder.embed(src), 0)  # (B, S, D)
    q, k = attn.split_heads(attn.w_q(x)), attn.split_heads(attn.w_k(x))  # (B, H, S, Dh)
    scores = q @ k.transpose(-2, -1)  # (B, H, S, S)
    return float((scores - scores.transpose(-2, -1)).abs().max() / scores.abs().max())


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    steps = 6 if smoke else 400
    runs = out / "qk_tied_runs"
    data = fresh_data(runs, smoke, seed)
    src, ref = read_split(data, "valid")
    figures: dict[str, Any] = {"steps": steps, "variants": {}}
    for variant in VARIANTS:
        alter = tie_query_key if variant == "tied" else None
        model, tokenizers, curve = trained_model(data, runs / variant, small_model(), steps, seed,
                                                 alter=alter)  # fmt: skip
        batch = teacher_batch(tokenizers, src[:200], ref[:200])
        seed_everything(seed)  # the weights this run started from
        fresh = EncoderDecoder(model.config)
        if alter:
            alter(fresh)
        figures["variants"][variant] = {
            **curve,
            "parameters": model.num_parameters(),
            "exact_match": greedy_exact_match(model, tokenizers, src, ref),
            "at_init": diagonal_share(fresh, batch.src, batch.tgt_in),
            "trained": diagonal_share(model, batch.src, batch.tgt_in),
            "score_asymmetry": score_symmetry(model, batch.src),
        }
    v = figures["variants"]

    def enc(variant: str, when: str) -> str:
        shares = v[variant][when]["encoder"]
        return f"{sum(s[0] for s in shares) / len(shares):.2f}"

    uniform = v["separate"]["trained"]["encoder"][0][2]
    figures["answer"] = (
        f"After {steps} steps: separate W_Q, W_K {last_valid(v['separate'])}, tied "
        f"{last_valid(v['tied'])} (validation loss, greedy exact match) with "
        f"{v['separate']['parameters'] - v['tied']['parameters']:,} fewer parameters tied. "
        f"A token's attention to itself in the encoder (mean over layers; uniform "
        f"{uniform:.2f}): at initialisation {enc('separate', 'at_init')} separate vs "
        f"{enc('tied', 'at_init')} tied; trained {enc('separate', 'trained')} vs "
        f"{enc('tied', 'trained')}. Score asymmetry max|S−Sᵀ|/max|S|: "
        f"{v['separate']['score_asymmetry']:.2f} separate, {v['tied']['score_asymmetry']:.1e} tied."
    )
    plot(figures, out / "qk_tied.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    v = figures["variants"]
    valid_loss_panel(axes[0], {k: v[k] for k in VARIANTS}, "W_Q, W_K separate or tied")
    ax = axes[1]
    labels, width = [], 0.2
    bars = [(var, when) for var in VARIANTS for when in ("at_init", "trained")]
    n_layers = 0
    for i, (var, when) in enumerate(bars):
        shares = v[var][when]["encoder"] + v[var][when]["decoder"]
        n_layers = len(shares)
        xs = [j + (i - 1.5) * width for j in range(n_layers)]
        ax.bar(xs, [s[0] for s in shares], width, label=f"{var}, {when.replace('_', ' ')}")
    n_enc = len(v["separate"]["trained"]["encoder"])
    labels = [f"enc {j + 1}" for j in range(n_enc)]
    labels += [f"dec {j + 1}" for j in range(n_layers - n_enc)]
    uniform = [
        s[2] for s in v["separate"]["trained"]["encoder"] + v["separate"]["trained"]["decoder"]
    ]
    ax.plot(range(n_layers), uniform, "k_", markersize=30, label="uniform 1/length")
    ax.set_xticks(range(n_layers), labels)
    ax.set(ylabel="attention weight on itself", title="self-attention's diagonal share")
    ax.legend(fontsize=8)
    save_figure(fig, path)


main = cli("qk_tied", __doc__, run)

if __name__ == "__main__":
    main()
