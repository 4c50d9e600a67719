"""What is the sinusoidal encoding, and why does PE(pos+k) follow linearly from PE(pos)?
(QUESTIONS.md 11)

    python -m experiments.sinusoid --out runs/why          # seconds

§3.5 of the paper: "for any fixed offset k, PE(pos+k) can be represented as a linear function
of PE(pos)". Measured on aiayn's own table (`aiayn.nn.positional.sinusoid_table`, d_model 512,
positions 0 … 1023):

1. for each offset k, the matrix M_k that best maps PE(pos) to PE(pos+k) is fitted by least
   squares on a random half of the positions, and predicts the other half just as well: one
   matrix for every position;
2. the block-diagonal rotation the formula gives — dimension pair i turned by the angle k·ω_i,
   ω_i = 1/10000^(2i/d) — maps every PE(pos) to PE(pos+k) to float32 rounding. (The fitted
   matrix is not unique: the slowest pairs barely turn over 1,024 positions, so many
   matrices fit them; the rotation is the exact one.)
3. PE(pos)·PE(pos+k) depends on k only (not on pos), and is symmetric in ±k: the dot product
   alone cannot tell before from after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aiayn.nn.positional import sinusoid_table
from experiments.common import cli, pyplot, save_figure, seed_everything

D_MODEL = 512
OFFSETS = [1, 2, 5, 10, 50, 100, 250]


def rotation(k: int, d_model: int) -> Tensor:
    """The analytic M_k: PE(pos+k) = PE(pos) @ M_k, pair (2i, 2i+1) rotated by k·ω_i.

    Shape: -> (d_model, d_model) float64.
    """
    omega = 1.0 / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    c, s = torch.cos(k * omega), torch.sin(k * omega)  # (d/2,)
    m = torch.zeros(d_model, d_model, dtype=torch.float64)
    i = torch.arange(0, d_model, 2)
    # row vector [sin a, cos a] @ [[c, -s], [s, c]] = [sin(a+kω), cos(a+kω)]
    m[i, i], m[i, i + 1] = c, -s
    m[i + 1, i], m[i + 1, i + 1] = s, c
    return m


def fit_offsets(
    pe: Tensor, offsets: list[int], generator: torch.Generator
) -> list[dict[str, float]]:
    """For each offset k: the least-squares M_k fitted on a random half of the positions, its
    error on the other half, and the error of the analytic rotation on all of them."""
    rows = []
    for k in offsets:
        x, y = pe[:-k], pe[k:]  # (T-k, D): PE(pos) and PE(pos+k)
        order = torch.randperm(len(x), generator=generator)
        fit, held = order[: len(x) // 2], order[len(x) // 2 :]
        m = torch.linalg.lstsq(x[fit], y[fit]).solution  # (D, D)
        rows.append({
            "k": k,
            "fit_rms": float((x[fit] @ m - y[fit]).pow(2).mean().sqrt()),
            "held_out_rms": float((x[held] @ m - y[held]).pow(2).mean().sqrt()),
            "analytic_rms": float((x @ rotation(k, pe.shape[1]) - y).pow(2).mean().sqrt()),
        })  # fmt: skip
    return rows


def dot_by_offset(pe: Tensor, max_k: int, starts: list[int]) -> dict[str, Any]:
    """PE(pos)·PE(pos+k) for k = -max_k … max_k, at each start position."""
    ks = list(range(-max_k, max_k + 1))
    curves = {str(p): [float(pe[p] @ pe[p + k]) for k in ks] for p in starts}
    stacked = torch.tensor(list(curves.values()))  # (starts, 2·max_k+1)
    spread = float((stacked - stacked.mean(0)).abs().max())
    mirror = float((stacked - stacked.flip(-1)).abs().max())
    return {"k": ks, "curves": curves, "max_spread_over_pos": spread, "max_asymmetry": mirror}


def run(out: Path, seed: int, smoke: bool) -> dict[str, Any]:
    generator = seed_everything(seed)
    length, d_model = (256, 64) if smoke else (1024, D_MODEL)  # more positions than dimensions
    pe = sinusoid_table(length, d_model).double()  # (length, D)
    figures: dict[str, Any] = {
        "d_model": d_model,
        "positions": length,
        "offsets": fit_offsets(pe, [k for k in OFFSETS if k <= length // 4], generator),
        "dot": dot_by_offset(pe, 60, [60, 150] if smoke else [60, 300, 600, 900]),
    }
    worst = max(r["held_out_rms"] for r in figures["offsets"])
    analytic = max(r["analytic_rms"] for r in figures["offsets"])
    dot = figures["dot"]
    figures["answer"] = (
        f"One matrix per offset: M_k fitted on half of {length} positions predicts the other "
        f"half with RMS error ≤ {worst:.1e} (entries are in [-1, 1]); the analytic rotation by "
        f"k·ω_i does it to ≤ {analytic:.1e} (float32 rounding). PE(pos)·PE(pos+k) is the "
        f"same at every pos "
        f"(largest difference {dot['max_spread_over_pos']:.1e}) and symmetric in ±k "
        f"({dot['max_asymmetry']:.1e}): it encodes distance, not direction."
    )
    plot(pe, figures, out / "sinusoid.png")
    return figures


def plot(pe: Tensor, figures: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    ax = axes[0]
    im = ax.imshow(pe[:128].T.numpy(), aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
    ax.set(xlabel="position", ylabel="dimension", title="PE(pos): the first 128 positions")
    fig.colorbar(im, ax=ax)
    ax = axes[1]
    dots = (pe[:200] @ pe[:200].T).numpy()  # (200, 200): constant along each diagonal
    im = ax.imshow(dots, cmap="viridis")
    ax.set(xlabel="pos'", ylabel="pos", title="PE(pos)·PE(pos'): depends on pos'−pos only")
    fig.colorbar(im, ax=ax)
    ax = axes[2]
    d = figures["dot"]
    for start, curve in d["curves"].items():
        ax.plot(d["k"], curve, label=f"pos = {start}", alpha=0.7)
    ax.set(xlabel="offset k", ylabel="PE(pos)·PE(pos+k)", title="the same curve at every pos")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path, grid=False)  # the heat maps stay clean


main = cli("sinusoid", __doc__, run)

if __name__ == "__main__":
    main()
