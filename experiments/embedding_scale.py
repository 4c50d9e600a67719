"""Why multiply the embeddings by √d_model — and does it matter with or without tying?
(QUESTIONS.md 10)

    python -m experiments.embedding_scale --out docs/why     # 13.4 minutes on 1 of 2 shared cores

The same encoder-decoder (2+2 layers, d_model 128, 4 heads, sinusoidal positions) trained on
the number-words task for the same steps, in the four corners of the grid

    embeddings × √d_model (§3.4) or not  ×  tie_embeddings "all" (§3.4: source embedding =
    target embedding = pre-softmax projection) or "none" (three matrices).

The embeddings start at N(0, 1/d_model) either way (`aiayn.nn.embeddings.TokenEmbedding`), so
a token vector has norm ≈ 1 and the sinusoidal encoding it is added to has norm √(d_model/2)
= 8: without ×√d_model the positions outweigh the tokens 8 to 1 at the start. The switch is
the embedding modules' own `scale` (set to 1 in the run; the encoder-decoder config has no
flag for it). Also measured: ‖token vector‖ / ‖positional vector‖ entering the first layer, at
initialisation and after training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from aiayn.models.encoder_decoder import EncoderDecoder
from experiments.common import cli, pyplot, save_figure, seed_everything
from experiments.numbers import (
    fresh_data,
    greedy_exact_match,
    read_split,
    small_model,
    trained_model,
    valid_loss_panel,
)

GRID = [(scale, tie) for scale in (True, False) for tie in ("all", "none")]


def unscaled(model: EncoderDecoder) -> None:
    """No ×√d_model on the source and target embeddings."""
    model.encoder.embed.scale = model.decoder.embed.scale = 1.0


def name(scale: bool, tie: str) -> str:
    return f"{'×√d' if scale else 'no ×√d'}, tie {tie}"


@torch.no_grad()
def token_to_position_ratio(model: EncoderDecoder, src: torch.Tensor) -> float:
    """Mean ‖embedding(x)‖ / ‖PE(pos)‖ over the real source tokens. Shape: src (B, S)."""
    tokens = model.encoder.embed(src)  # (B, S, D), ×√d_model when the module scales
    positions = model.encoder.positional.embed(torch.zeros_like(tokens), 0)  # (B, S, D)
    real = src != model.config.pad_id
    return float((tokens.norm(dim=-1)[real] / positions.norm(dim=-1)[real]).mean())


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    seed_everything(seed)
    steps = 6 if smoke else 300
    runs = out / "embedding_scale_runs"
    data = fresh_data(runs, smoke, seed)
    src, ref = read_split(data, "valid")
    figures: dict[str, Any] = {"steps": steps, "runs": []}
    for scale, tie in GRID:
        alter = None if scale else unscaled
        cfg = small_model(tie_embeddings=tie)
        model, tokenizers, curve = trained_model(data, runs / f"{int(scale)}_{tie}", cfg, steps,
                                                 seed, alter=alter)  # fmt: skip
        batch = [tokenizers.source.encode(s) for s in src[:200]]
        width = max(map(len, batch))
        pad = model.config.pad_id
        ids = torch.tensor([b + [pad] * (width - len(b)) for b in batch])  # (200, S)
        seed_everything(seed)  # the weights training started from
        fresh = EncoderDecoder(model.config)
        if alter:
            alter(fresh)
        figures["runs"].append({
            "scale": scale, "tie": tie, **curve,
            "parameters": model.num_parameters(),
            "exact_match": greedy_exact_match(model, tokenizers, src, ref),
            "token_to_position_init": token_to_position_ratio(fresh, ids),
            "token_to_position_trained": token_to_position_ratio(model, ids),
        })  # fmt: skip
    figures["pe_norm"] = math.sqrt(small_model().d_model / 2)
    figures["answer"] = " ".join(
        f"{name(r['scale'], r['tie'])}: loss {r['valid'][-1]['loss']:.2f}, exact match "
        f"{r['exact_match']:.1%}, ‖token‖/‖position‖ {r['token_to_position_init']:.2f} → "
        f"{r['token_to_position_trained']:.2f};"
        for r in figures["runs"]
    )
    plot(figures, out / "embedding_scale.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    runs = {name(r["scale"], r["tie"]): r for r in figures["runs"]}
    valid_loss_panel(axes[0], runs, "embedding scale × tying")
    ax = axes[1]
    labels = [name(r["scale"], r["tie"]) for r in figures["runs"]]
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [r["token_to_position_init"] for r in figures["runs"]], 0.4,
           label="at initialisation")  # fmt: skip
    ax.bar([x + 0.2 for x in xs], [r["token_to_position_trained"] for r in figures["runs"]],
           0.4, label="trained")  # fmt: skip
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set(ylabel="‖token vector‖ / ‖positional vector‖",
           title="who dominates the first layer's input")  # fmt: skip
    ax.legend()
    save_figure(fig, path)


main = cli("embedding_scale", __doc__, run)

if __name__ == "__main__":
    main()
