"""`aiayn generate`: continue text with a trained language model (`aiayn.generate`)."""

from __future__ import annotations

import argparse
import sys

from aiayn.cli.translate import positive_int


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="generate text with a trained language model",
        description="Continue a prompt with a language model trained by `aiayn train lm`. "
        "With --prompt (or neither --prompt nor --input) the prompt is printed and the "
        "continuation streams to stdout as it is generated, samples separated by a line "
        "'---'. With --input every line of the file is a prompt, and each sample's "
        "continuation (without the prompt) is printed on one line, in input order, with "
        "newlines inside it written as \\n and backslashes as \\\\. A sample ends at the "
        "end-of-text token or after --max-new-tokens. The model sees at most its context "
        "(max_len) tokens: past it the window slides, keeping the last max_len/2 tokens.",
    )
    p.add_argument(
        "--model", required=True, metavar="DIR",
        help="language-model directory written by `aiayn train lm`, or one of its checkpoints "
        "(RUN/checkpoints/step_N)",
    )  # fmt: skip
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--prompt",
        metavar="TEXT",
        help="text to continue; empty or absent = from the start token [unset]",
    )
    source.add_argument(
        "--input",
        metavar="FILE",
        help="file of prompts, one a line (an empty line starts from the start token)",
    )
    p.add_argument(
        "--max-new-tokens", type=non_negative_int, default=256, metavar="N",
        help="most tokens generated per sample [256]",
    )  # fmt: skip
    p.add_argument(
        "--temperature", type=float, default=1.0, metavar="T",
        help="divide the logits by T: < 1 sharper, > 1 flatter; 0 = greedy (argmax) [1.0]",
    )  # fmt: skip
    p.add_argument(
        "--top-k", type=positive_int, metavar="K",
        help="sample only from the K most probable tokens; unset = all [unset]",
    )  # fmt: skip
    p.add_argument(
        "--top-p", type=float, metavar="P",
        help="nucleus sampling: only from the most probable tokens holding probability P, "
        "in (0, 1]; unset = all [unset]",
    )  # fmt: skip
    p.add_argument(
        "--repetition-penalty", type=float, default=1.0, metavar="R",
        help="CTRL's penalty on every token already in the prompt or output, > 1 discourages "
        "repeats (1.2 is usual); 1 = none [1.0]",
    )  # fmt: skip
    p.add_argument(
        "--seed", type=int, metavar="S",
        help="sample k (counting every sample of every prompt) draws with seed S + k, so a "
        "run is reproducible whatever --batch-size; unset = a fresh random seed [unset]",
    )  # fmt: skip
    p.add_argument(
        "--num-samples", type=positive_int, default=1, metavar="N", help="samples per prompt [1]"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=64, metavar="N",
        help="samples generated together with --input (results do not depend on it) [64]",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda, … [cpu]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiayn.generator import generate, load_language_model

    model, tokenizer = load_language_model(args.model, args.device)
    options = dict(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
        top_p=args.top_p, repetition_penalty=args.repetition_penalty, seed=args.seed,
        num_samples=args.num_samples, tokenizer=tokenizer,
    )  # fmt: skip
    if args.input is not None:
        from aiayn.data.parallel import read_lines

        prompts = read_lines(args.input)
        outputs = generate(model, prompts, batch_size=args.batch_size, **options)
        sys.stdout.write("".join(_one_line(text) + "\n" for text in outputs))
        return 0
    prompt = args.prompt or ""
    out = sys.stdout
    current = -1  # the sample being streamed

    def show(k: int, text: str) -> None:
        nonlocal current
        while current < k:  # a new sample begins (samples come in order, one at a time)
            if current >= 0:
                out.write("\n---\n")
            current += 1
            out.write(prompt)
        out.write(text)
        out.flush()

    generate(model, [prompt], batch_size=1, on_text=show, **options)
    show(args.num_samples - 1, "")  # samples that produced no text still get their prompt
    out.write("\n")
    out.flush()
    return 0


def _one_line(text: str) -> str:
    """`text` on one line: backslash → \\\\, newline → \\n, carriage return → \\r."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
