"""Sampling as a strategy: next-token logits in, next tokens out, with no model inside.

The generation loop runs the model and hands each step's next-token logits (B, V) to a
`Sampler`, together with each row's history (prompt + tokens generated so far); the sampler
returns the next token of every row (B,).

The logits are processed by small pure functions, in the order of HF `generate`:

    banned ids -> -inf  →  repetition penalty  →  temperature  →  top-k  →  top-p  →  softmax

then one token per row is drawn from the result (multinomial). Temperature 0 means greedy:
argmax of the banned/penalised logits (the other processors cannot change the argmax, so they
are skipped); top_k = 1 is greedy as well. Greedy draws no random numbers.

Every processor keeps the logits' dtype; `Sampler` computes in fp32 whatever the model's dtype.
Removed tokens get -inf (never a large negative number: rule 3 of DESIGN.md), so softmax gives
them probability exactly 0.

Reproducibility. Draws come from the `torch.Generator` passed in (or the global RNG when none).
With one generator the B rows share one random stream, consumed in batch order, so a row's
samples depend on the whole batch: `--seed S` reproduces a run of the *same batch* (same
prompts, same order, same batch size, same device), not one prompt taken out of it, nor the
same prompts batched differently. Passing one generator per row (a sequence of B generators)
makes row i's samples depend only on its own generator and logits, so a prompt samples the same
text alone or in any batch; a loop that drops finished rows must drop their generators too. CPU
and CUDA generators give different streams, and the generator must live on the logits' device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from aiayn.errors import ConfigError

NEG_INF = float("-inf")


def repetition_penalty(
    logits: Tensor, history: Tensor, penalty: float, history_mask: Tensor | None = None
) -> Tensor:
    """Penalise every token id that already occurs in the row's history (CTRL, Keskar et al.
    2019, §4.1; HF's `RepetitionPenaltyLogitsProcessor`).

    A seen token's logit is divided by `penalty` when positive (or zero) and multiplied by it
    when negative, so penalty > 1 always makes it less likely and 0 < penalty < 1 more likely.
    It is applied once per id, however often the id occurs. The history is everything the row
    has seen: the prompt and the tokens generated so far.

    Padding convention: `history_mask` True = a real token, False = padding (ignored, whatever
    id it holds, even one outside the vocabulary such as -1). None = every entry is real.
    Real ids must lie in [0, V).

    Shape: logits (B, V), history (B, L) long, history_mask (B, L) bool | None -> (B, V).
    """
    if not penalty > 0:
        raise ValueError(f"repetition penalty must be > 0, got {penalty}")
    B, V = logits.shape
    if history.numel() == 0 or penalty == 1.0:
        return logits
    if history_mask is None:
        history_mask = torch.ones_like(history, dtype=torch.bool)  # (B, L)
    ids = history.masked_fill(~history_mask, 0)  # (B, L): padding points at id 0 ...
    counts = torch.zeros(B, V, dtype=torch.long, device=logits.device)
    counts.scatter_add_(1, ids, history_mask.long())  # ... but adds 0 there: (B, V)
    penalised = torch.where(logits < 0, logits * penalty, logits / penalty)  # (B, V)
    return torch.where(counts > 0, penalised, logits)


def temperature(logits: Tensor, t: float) -> Tensor:
    """Divide by the temperature: t < 1 sharpens the distribution, t > 1 flattens it.

    t must be > 0; t = 0 (greedy) is the sampler's business, not a division by zero.

    Shape: logits (B, V) -> (B, V).
    """
    if not t > 0:
        raise ValueError(
            f"temperature must be > 0 here (0 = greedy is handled by Sampler), got {t}"
        )
    return logits if t == 1.0 else logits / t


def top_k(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row (Fan et al. 2018), set the others to -inf.

    Ties: every token whose logit equals the k-th largest is kept, so more than k tokens survive
    when several share the cut value (HF does the same); the result never depends on the order
    in which `torch.topk` breaks ties. k >= V keeps everything.

    Shape: logits (B, V) -> (B, V).
    """
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits: Tensor, p: float) -> Tensor:
    """Nucleus sampling (Holtzman et al. 2020): keep the smallest set of most probable tokens
    whose total probability is >= p, always at least the most probable one; the rest -inf.

    Boundary rule (HF's `TopPLogitsWarper`): a token is removed when it and all less probable
    tokens together hold probability <= 1 - p, computed as the ascending cumulative sum of the
    sorted softmax in the logits' dtype and compared with 1 - p. So when the top tokens reach
    exactly p the nucleus stops there (probabilities .5, .25, .125, ... with p = .75 keep two),
    and a top token above p is kept alone.

    Ties: every token as probable as the least probable token of the nucleus is kept too, so the
    result does not depend on sort order. HF differs only when equal probabilities straddle the
    cut: it then keeps some of them, chosen by the sort. p = 1 keeps everything.

    Shape: logits (B, V) -> (B, V).
    """
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    if p == 1.0:
        return logits
    V = logits.shape[-1]
    ascending = logits.sort(dim=-1).values  # (B, V), least probable first
    tail_mass = ascending.softmax(dim=-1).cumsum(dim=-1)  # (B, V): mass of this and those below
    # tail_mass is non-decreasing, so the removed tokens are a prefix; the last one always stays.
    n_removed = (tail_mass <= 1 - p).sum(dim=-1, keepdim=True).clamp(max=V - 1)  # (B, 1)
    cut = ascending.gather(-1, n_removed)  # (B, 1): the least probable logit kept
    return logits.masked_fill(logits < cut, NEG_INF)


@dataclass(frozen=True)
class SamplingConfig:
    """How the next token is chosen; the defaults sample from the model's distribution as is.

    Fields left at their neutral values (temperature 1, top_k None, top_p None or 1, penalty 1)
    skip their processor, as in HF `generate`.
    """

    temperature: float = 1.0  # 0 = greedy (argmax); < 1 sharper, > 1 flatter
    top_k: int | None = None  # keep the k most probable tokens (Fan et al. 2018); None = all
    top_p: float | None = None  # nucleus (Holtzman et al. 2020), in (0, 1]; None = all
    repetition_penalty: float = 1.0  # CTRL (Keskar et al. 2019 suggest 1.2); 1 = none

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"sampling option '{name}' = {getattr(self, name)!r}: {why}")

        def number(x: object) -> bool:
            return isinstance(x, (int, float)) and not isinstance(x, bool)

        if not number(self.temperature) or not 0 <= self.temperature < float("inf"):
            raise bad("temperature", "must be a number >= 0 (0 = greedy)")
        k = self.top_k
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise bad("top_k", "must be an integer >= 1, or None to keep every token")
        if self.top_p is not None and (not number(self.top_p) or not 0 < self.top_p <= 1):
            raise bad("top_p", "must be in (0, 1], or None to keep every token")
        penalty = self.repetition_penalty
        if not number(penalty) or not 0 < penalty < float("inf"):
            raise bad("repetition_penalty", "must be > 0 (1 = no penalty, > 1 discourages repeats)")

    @property
    def greedy(self) -> bool:
        """Whether the choice is the argmax (temperature 0 or top_k 1): no randomness drawn."""
        return self.temperature == 0 or self.top_k == 1


class Sampler:
    """Chooses the next token of each row from its logits under a `SamplingConfig`.

    banned: token ids never generated (padding, <s>), set to -inf before anything else.
    """

    def __init__(self, config: SamplingConfig | None = None, banned: Sequence[int] = ()) -> None:
        self.config = config if config is not None else SamplingConfig()
        self.banned = tuple(sorted({int(i) for i in banned}))

    def process(
        self, logits: Tensor, history: Tensor | None = None, history_mask: Tensor | None = None
    ) -> Tensor:
        """The fp32 logits the choice is made from; softmax of them is the sampling distribution.

        Greedy configs apply only the banned ids and the repetition penalty.

        Shape: logits (B, V) any float dtype, history (B, L) long | None,
        history_mask (B, L) bool | None (True = real token) -> (B, V) fp32.
        """
        cfg = self.config
        logits = logits.float()  # (B, V)
        if self.banned:
            banned = torch.tensor(self.banned, dtype=torch.long, device=logits.device)
            logits = logits.index_fill(1, banned, NEG_INF)
        if cfg.repetition_penalty != 1.0:
            if history is None:
                raise ValueError("a repetition penalty needs the history of each row")
            logits = repetition_penalty(logits, history, cfg.repetition_penalty, history_mask)
        if cfg.greedy:
            return logits
        logits = temperature(logits, cfg.temperature)
        if cfg.top_k is not None:
            logits = top_k(logits, cfg.top_k)
        if cfg.top_p is not None:
            logits = top_p(logits, cfg.top_p)
        return logits

    def __call__(
        self,
        logits: Tensor,
        history: Tensor | None = None,
        history_mask: Tensor | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> Tensor:
        """The next token of every row.

        generator: one `torch.Generator` for the whole batch, a sequence of B generators (row i
        draws from generator i only, so its samples do not depend on the rest of the batch), or
        None for torch's global RNG. Greedy configs draw nothing; argmax ties go to the lowest id.

        Shape: logits (B, V), history (B, L) long | None, history_mask (B, L) bool | None
        -> (B,) long.
        """
        processed = self.process(logits, history, history_mask)  # (B, V) fp32
        if self.config.greedy:
            return processed.argmax(dim=-1)  # (B,)
        probs = processed.softmax(dim=-1)  # (B, V)
        if generator is None or isinstance(generator, torch.Generator):
            return torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        if len(generator) != probs.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {probs.shape[0]} rows")
        # Each row is drawn exactly as a batch of one would be, with its own generator.
        rows = [
            torch.multinomial(probs[i : i + 1], 1, generator=g)  # (1, 1)
            for i, g in enumerate(generator)
        ]
        return torch.cat(rows).squeeze(1)  # (B,)


__all__ = [
    "Sampler",
    "SamplingConfig",
    "repetition_penalty",
    "temperature",
    "top_k",
    "top_p",
]
