"""Beam search as a tree: every hypothesis a search considered, and why each one left it.

Attach a `BeamTree` to a search (`beam_search(..., recorder=tree)`); after it, `tree.nodes`
holds one node per candidate of each step's top 2K (the only candidates `BeamSearch` ranks;
every other continuation scored lower than all of them), linked to its parent, with its
status and the reason for it:

    live       kept among the K best that do not end (it has children at the next step)
    finished   ended with </s> among the top K, or reached the length limit: scored
               log P / lp(|Y|) (GNMT's length penalty, `aiayn.decode.length_penalty`)
    pruned     fell out of the top K of its step, or a </s> ranked below K
    outranked  finished, but K finished hypotheses scored higher
    stopped    still live when the search ended: even its best possible final score could
               not beat the K-th finished one (the exact stopping rule of `aiayn.decode.beam`)
    winner     the best finished hypothesis: the search's output

Nothing here runs unless attached: the search tests `recorder is None` once per step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from aiayn.decode.beam import BeamSearch, StepCandidates
from aiayn.decode.length_penalty import length_penalty

NEG_INF = float("-inf")


@dataclass
class BeamNode:
    """One hypothesis: its parent's tokens plus `token` (the root is <s>)."""

    id: int
    parent: int | None
    sentence: int  # index of the input sentence
    step: int  # tokens output so far (0: the root)
    token: int | None  # None for the root
    log_prob: float  # log P of all its tokens so far
    status: str = "live"
    reason: str = ""
    score: float | None = None  # log P / lp(|Y|), once finished
    rank: int = 0  # its place among its step's 2K candidates (1 = best)


@dataclass
class BeamTree:
    """A `BeamRecorder` that keeps every ranked candidate as a node of a tree per sentence."""

    nodes: list[BeamNode] = field(default_factory=list)
    _rows: list[int | None] = field(default_factory=list)  # node of each batch row
    _finished: dict[int, list[int]] = field(default_factory=dict)  # sentence -> node ids
    _beam: int = 0
    _alpha: float = 0.0
    _eos: int = -1

    def record(self, search: BeamSearch, step: StepCandidates) -> None:
        if not self.nodes:
            self._start(search)
        K, t = search.K, step.t
        rows, tokens = step.rows.tolist(), step.tokens.tolist()  # (A, 2K)
        scores, is_eos = step.scores.tolist(), step.is_eos.tolist()  # (A, 2K)
        ends, keep = step.ends.tolist(), step.keep.tolist()  # (A, K)
        at_limit, done = step.at_limit.tolist(), step.done.tolist()  # (A,)
        active = step.active.tolist()  # (A,)
        next_rows: list[int | None] = []
        for a, b in enumerate(active):
            kept = {j: i for i, j in enumerate(keep[a])}
            new: list[int | None] = [None] * K  # the nodes of the K new beams, in row order
            cutoff = scores[a][keep[a][-1]]  # the K-th kept log P
            for j, score in enumerate(scores[a]):
                parent = self._rows[rows[a][j]]
                if score == NEG_INF or parent is None:
                    continue  # an empty beam (before K beams exist) or a banned token
                node = self._add(parent, b, t + 1, tokens[a][j], score, rank=j + 1)
                if j < K and ends[a][j]:
                    self._finish(node, t + 1, f"ended with </s> (rank {j + 1} of step {t + 1})")
                elif j in kept:
                    node.reason = f"kept: rank {j + 1} among step {t + 1}'s candidates"
                    new[kept[j]] = node.id
                elif is_eos[a][j]:
                    node.status = "pruned"
                    node.reason = (f"</s> at rank {j + 1}: only </s> among the top {K} "
                                   "candidates finish")  # fmt: skip
                else:
                    node.status = "pruned"
                    node.reason = (f"fell out of the top {K}: rank {j + 1}, log P {score:.3f} "
                                   f"< the {_ordinal(K)} kept beam's {cutoff:.3f}")  # fmt: skip
            if at_limit[a]:
                for i in [i for i in new if i is not None]:
                    self._finish(self.nodes[i], t + 1, f"reached the length limit {t + 1}")
            elif done[a]:
                self._stop(search, a, b, [i for i in new if i is not None])
            if not done[a]:
                next_rows += new
        self._rows = next_rows

    def _start(self, search: BeamSearch) -> None:
        """One root (<s>) per sentence; only beam 0 of each starts live."""
        self._beam, self._alpha, self._eos = search.K, search.alpha, search.eos_id
        for b in range(search.active.numel()):
            root = self._add(None, b, 0, None, 0.0)
            root.reason = "<s>: every hypothesis starts here"
            self._rows += [root.id] + [None] * (search.K - 1)

    def _add(
        self, parent: int | None, sentence: int, step: int, token: int | None, lp: float,
        rank: int = 0,
    ) -> BeamNode:  # fmt: skip
        node = BeamNode(len(self.nodes), parent, sentence, step, token, lp, rank=rank)
        self.nodes.append(node)
        return node

    def _finish(self, node: BeamNode, length: int, why: str) -> None:
        """Score a finished hypothesis; keep each sentence's K best, mark the rest outranked."""
        lp = length_penalty(length, self._alpha)
        node.status, node.score = "finished", node.log_prob / lp
        node.reason = (f"{why}: score = log P / lp(|Y|={length}) = {node.log_prob:.3f} / "
                       f"{lp:.3f} = {node.score:.3f}")  # fmt: skip
        pool = self._finished.setdefault(node.sentence, [])
        pool.append(node.id)
        pool.sort(key=lambda i: -self.nodes[i].score)
        for i in pool[self._beam :]:
            out = self.nodes[i]
            if out.status != "outranked":
                kth = self.nodes[pool[self._beam - 1]].score
                out.status = "outranked"
                out.reason += f"; outranked: {self._beam} finished hypotheses score ≥ {kth:.3f}"
        del pool[self._beam :]

    def _stop(self, search: BeamSearch, a: int, b: int, live: list[int]) -> None:
        """The sentence's search stopped with `live` beams left: say why they cannot win."""
        limit = int(search.limits[b])
        lp_best = max(length_penalty(limit, self._alpha), length_penalty(search.t, self._alpha))
        worst = self.nodes[self._finished[b][-1]].score
        for i in live:
            node = self.nodes[i]
            bound = node.log_prob / lp_best
            node.status = "stopped"
            node.reason = (f"search stopped: its best possible final score {bound:.3f} "
                           f"(log P / lp at best length) ≤ the {_ordinal(self._beam)} finished "
                           f"score {worst:.3f}: log P only falls as tokens are added")  # fmt: skip

    # --- after the search ------------------------------------------------------------------

    def winner(self, sentence: int = 0) -> BeamNode:
        """The best finished hypothesis of `sentence`; marks it and says why it won."""
        pool = [self.nodes[i] for i in self._finished.get(sentence, [])]
        if not pool:
            raise ValueError(f"no finished hypothesis for sentence {sentence}")
        best = pool[0]
        if best.status == "winner":
            return best
        lines = [f"highest score {best.score:.3f} (log P {best.log_prob:.3f}, {best.step} tokens)"]
        if len(pool) > 1:
            second = pool[1]
            lines.append(f"runner-up: {second.score:.3f} (log P {second.log_prob:.3f}, "
                         f"{second.step} tokens)")  # fmt: skip
        everyone = [n for n in self.nodes if n.sentence == sentence and n.score is not None]
        by_log_prob = max(everyone, key=lambda n: n.log_prob)
        if by_log_prob is not best:
            lines.append(f"by raw log P alone the {by_log_prob.step}-token hypothesis (log P "
                         f"{by_log_prob.log_prob:.3f}) would have won: the length penalty "
                         f"(α = {self._alpha}) decided")  # fmt: skip
        else:
            lines.append("it also has the highest raw log P: the length penalty changed nothing")
        best.status, best.reason = "winner", best.reason + "; won: " + "; ".join(lines)
        return best

    def path(self, node: BeamNode) -> list[int]:
        """The output tokens of `node`'s hypothesis (no <s>, no </s>)."""
        tokens = []
        while node.parent is not None:
            tokens.append(node.token)
            node = self.nodes[node.parent]
        tokens.reverse()
        return tokens[:-1] if tokens and tokens[-1] == self._eos else tokens

    def as_dicts(self, sentence: int = 0) -> list[dict]:
        """The nodes of one sentence as plain dicts (for JSON)."""
        return [asdict(n) for n in self.nodes if n.sentence == sentence]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


__all__ = ["BeamNode", "BeamTree"]
