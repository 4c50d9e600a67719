"""How does the Transformer differ from an RNN? Why do RNN gradients vanish? Where does the
Transformer parallelize? (QUESTIONS.md 26, 27)

    python -m experiments.recurrence --out runs/why        # ~10 minutes on 2 CPU cores

An LSTM, a GRU (PyTorch's: the baselines) and a decoder-only Transformer (aiayn's, 2 layers,
d_model 64, sinusoidal positions) of about the same number of parameters, on a task whose
answer lies k tokens back: the first token of a sequence of k+1 random tokens must be named
at the last position (16 classes; chance 6.25%).

1. accuracy against k (8 … 512) after the same number of training steps;
2. the gradient of the loss with respect to each input embedding, against its distance from
   the output, at initialisation: through a recurrence it is a product of k Jacobians and
   fades with distance; through attention every position is one step from the output;
3. forward + backward time against sequence length, and the sequential steps each needs: an
   RNN's step t waits for step t-1 (T steps); a Transformer layer computes all positions at
   once (n_layers steps), at O(T²) attention cost.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aiayn.config import DecoderOnlyConfig, LayerConfig
from aiayn.models.decoder_only import DecoderOnly
from experiments.common import cli, pyplot, save_figure, seed_everything

CLASSES = 16  # the token to recall: ids 2 … 17
VOCAB = CLASSES + 2
KINDS = ["lstm", "gru", "transformer"]
HIDDEN = {"lstm": 112, "gru": 130}  # about the Transformer's ~102k parameters each


class Recurrent(nn.Module):
    """Embedding → one LSTM or GRU layer → a linear read-out at every position."""

    def __init__(self, cell: str, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, hidden)
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, ids: Tensor, embedded: Tensor | None = None) -> Tensor:
        """Shape: ids (B, T) -> logits (B, T, VOCAB); `embedded` replaces the lookup."""
        x = self.embed(ids) if embedded is None else embedded  # (B, T, H)
        return self.out(self.rnn(x)[0])


def transformer(max_len: int) -> DecoderOnly:
    layer = LayerConfig(d_model=64, n_heads=4, d_ff=256, dropout=0.0, norm_first=True,
                        activation="gelu")  # fmt: skip
    cfg = DecoderOnlyConfig(vocab_size=VOCAB, n_layers=2, layer=layer, positional="sinusoidal",
                            max_len=max_len, tie_embeddings=False)  # fmt: skip
    return DecoderOnly(cfg)


def build(kind: str, max_len: int) -> nn.Module:
    if kind == "transformer":
        return transformer(max_len)
    return Recurrent(kind, HIDDEN[kind])


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def recall_batch(generator: torch.Generator, batch: int, k: int) -> tuple[Tensor, Tensor]:
    """Sequences of k+1 random tokens; the label is the first one.

    Shape: -> ids (batch, k+1) long in [2, VOCAB), labels (batch,) in [0, CLASSES).
    """
    ids = torch.randint(2, VOCAB, (batch, k + 1), generator=generator)
    return ids, ids[:, 0] - 2


def last_logits(model: nn.Module, ids: Tensor) -> Tensor:
    """Class logits at the last position. Shape: ids (B, T) -> (B, CLASSES)."""
    return model(ids)[:, -1, 2:]


def train_recall(kind: str, k: int, steps: int, seed: int) -> dict[str, Any]:
    seed_everything(seed)
    model = build(kind, k + 1)
    data = torch.Generator().manual_seed(seed + k)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    for _ in range(steps):
        ids, labels = recall_batch(data, 32, k)
        loss = F.cross_entropy(last_logits(model, ids), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    ids, labels = recall_batch(torch.Generator().manual_seed(seed + 10_000 + k), 512, k)
    with torch.no_grad():
        accuracy = float((last_logits(model.eval(), ids).argmax(-1) == labels).float().mean())
    return {"model": kind, "k": k, "accuracy": accuracy, "train_seconds": seconds,
            "params": params(model)}  # fmt: skip


def gradient_by_distance(kind: str, length: int, seed: int) -> list[float]:
    """Mean ‖∂loss/∂(input embedding at position t)‖ at initialisation, by distance
    T-1-t from the output (index 0 = the last position)."""
    seed_everything(seed)
    model = build(kind, length)
    ids, labels = recall_batch(torch.Generator().manual_seed(seed), 64, length - 1)
    captured: dict[str, Tensor] = {}
    if kind == "transformer":
        # the token embeddings, before positions are added: what each input token contributes
        def keep(module: nn.Module, args: Any, out: Tensor) -> None:
            out.retain_grad()
            captured["x"] = out

        handle = model.decoder.embed.register_forward_hook(keep)
        logits = model(ids)[:, -1, 2:]
        handle.remove()
    else:
        captured["x"] = model.embed(ids).detach().requires_grad_(True)
        logits = model(ids, embedded=captured["x"])[:, -1, 2:]
    F.cross_entropy(logits, labels).backward()
    norms = captured["x"].grad.norm(dim=-1).mean(0)  # (T,)
    return norms.flip(0).tolist()


def time_by_length(kind: str, lengths: list[int], repeats: int) -> list[float]:
    """Seconds of one forward + backward of a batch of 16 at each length (best of `repeats`)."""
    model = build(kind, max(lengths))
    out = []
    for length in lengths:
        ids = torch.randint(2, VOCAB, (16, length))
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model(ids).sum().backward()
            best = min(best, time.perf_counter() - start)
            model.zero_grad(set_to_none=True)
        out.append(best)
    return out


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    ks, steps = ([4, 8], 4) if smoke else ([8, 32, 128, 512], 400)
    lengths = [32, 64] if smoke else [64, 128, 256, 512, 1024]
    grad_len = 16 if smoke else 256
    figures: dict[str, Any] = {
        "task": f"name the first of k+1 random tokens ({CLASSES} classes) at the last position",
        "steps": steps,
        "batch": 32,
        "recall": [train_recall(kind, k, steps, seed) for k in ks for kind in KINDS],
        "gradient": {kind: gradient_by_distance(kind, grad_len, seed) for kind in KINDS},
        "timing": {
            "lengths": lengths,
            "seconds": {kind: time_by_length(kind, lengths, 2 if smoke else 3) for kind in KINDS},
            "sequential_steps": {"lstm": lengths, "gru": lengths, "transformer": 2},
        },
    }
    r = {(x["model"], x["k"]): x["accuracy"] for x in figures["recall"]}
    g = figures["gradient"]
    far = grad_len - 1
    t = figures["timing"]["seconds"]
    figures["answer"] = (
        f"At k={ks[-1]} after {steps} steps: LSTM {r['lstm', ks[-1]]:.2f}, GRU "
        f"{r['gru', ks[-1]]:.2f}, Transformer {r['transformer', ks[-1]]:.2f} accuracy (chance "
        f"{1 / CLASSES:.2f}). The gradient reaching the input {far} tokens back, relative to "
        f"the one 1 token back, at initialisation: LSTM {g['lstm'][far] / g['lstm'][1]:.1e}, "
        f"GRU {g['gru'][far] / g['gru'][1]:.1e}, Transformer "
        f"{g['transformer'][far] / g['transformer'][1]:.1e}. Forward+backward at length "
        f"{lengths[-1]}: LSTM {t['lstm'][-1] * 1e3:.0f} ms ({lengths[-1]} sequential steps), "
        f"Transformer {t['transformer'][-1] * 1e3:.0f} ms (2)."
    )
    plot(figures, out / "recurrence.png")
    return figures


def plot(figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    for kind in KINDS:
        rows = [x for x in figures["recall"] if x["model"] == kind]
        ax.semilogx([x["k"] for x in rows], [x["accuracy"] for x in rows], "o-",
                    label=f"{kind} ({rows[0]['params'] / 1e3:.0f}k params)", base=2)  # fmt: skip
    ax.axhline(1 / CLASSES, color="k", ls=":", label="chance")
    ax.set(xlabel="k (tokens back)", ylabel="accuracy", ylim=(0, 1.05),
           title=f"recall the token k back, {figures['steps']} steps")  # fmt: skip
    ax.legend(fontsize=8)
    ax = axes[1]
    for kind, norms in figures["gradient"].items():
        # from distance 1: the output's own token also reaches it through the residual path
        ax.semilogy(range(1, len(norms)), [n / norms[1] for n in norms[1:]], label=kind)
    ax.set(xlabel="distance from the output (tokens)", ylabel="‖∂L/∂x_t‖ relative to distance 1",
           title="gradient by distance, at initialisation")  # fmt: skip
    ax.legend(fontsize=8)
    ax = axes[2]
    tm = figures["timing"]
    for kind in KINDS:
        ax.loglog(tm["lengths"], [s * 1e3 for s in tm["seconds"][kind]], "o-", label=kind,
                  base=2)  # fmt: skip
    ax.set(xlabel="sequence length", ylabel="ms, forward + backward (batch 16)",
           title="time vs length (RNN: T sequential steps)")  # fmt: skip
    ax.legend(fontsize=8)
    save_figure(fig, path)


main = cli("recurrence", __doc__, run)

if __name__ == "__main__":
    main()
