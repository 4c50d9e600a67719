"""`aiayn attention`: explore every layer's and head's attention of one input
(`aiayn.visualize.explorer`), written as PNG grids and one self-contained HTML page."""

from __future__ import annotations

import argparse

from aiayn.cli.translate import length_penalty_alpha, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "attention",
        help="see every layer's and head's attention of one input (PNG grids + an HTML page)",
        description="Run one input through a model of any family and write into --out: a PNG "
        "grid (layers × heads) per kind of attention and attention.html, one self-contained "
        "page (no network) with a head view (hover a token to see what it attends to), a "
        "model view (every layer × head; click to enlarge), the attention rollout of an image "
        "model, and a translation's beam search as a tree (what was kept, pruned and why, and "
        "why the output won). Weights are recomputed by the reference path of attention; the "
        "page states how closely its outputs match the model's own fast (SDPA) path.",
    )
    p.add_argument(
        "--model", required=True, metavar="DIR",
        help="model directory of any family (translation, language model, BERT encoder or "
        "classifier, image classifier), or one of its checkpoints (RUN/checkpoints/step_N)",
    )  # fmt: skip
    p.add_argument(
        "--text", metavar="TEXT", default=None,
        help="text models: the input (a translation model's source sentence)",
    )  # fmt: skip
    p.add_argument(
        "--pair", metavar="TEXT", default=None,
        help="encoder-only (BERT) models: a second text, encoded as [CLS] text [SEP] pair [SEP]",
    )  # fmt: skip
    p.add_argument("--image", metavar="FILE", default=None, help="image models: the image file")
    p.add_argument(
        "--out", required=True, metavar="DIR", help="directory for the PNGs and attention.html"
    )
    p.add_argument(
        "--beam", type=positive_int, default=4,
        help="translation: beam size of the search shown as a tree (1: greedy) [4]",
    )  # fmt: skip
    p.add_argument(
        "--alpha", type=length_penalty_alpha, default=0.6,
        help="translation: length penalty α of the search (0.6: the paper) [0.6]",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, … [cpu]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiayn.visualize.explorer import explore
    from aiayn.visualize.explorer_page import save_exploration

    exploration = explore(
        args.model, args.text, args.pair, args.image, beam=args.beam, alpha=args.alpha,
        device=args.device,
    )  # fmt: skip
    for line in exploration.summary:
        print(line)
    for path in save_exploration(exploration, args.out):
        print(f"wrote {path}")
    return 0
