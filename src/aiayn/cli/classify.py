"""`aiayn classify`: label texts or text pairs with a fine-tuned classifier (`aiayn.classify`),
or image files with an image classifier (`aiayn.classify_images`): the model's arch decides."""

from __future__ import annotations

import argparse
import json
import sys

from aiayn.cli.translate import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="label texts (aiayn train classify) or images (aiayn train image) with a classifier",
        description="Print one label per input line (plain text) or row (.tsv as GLUE, .csv, "
        ".jsonl), in input order; with --probs also each label's probability, tab-separated "
        "after it, in the order of the model's labels (a header line names them). With "
        "--score the input's own labels are compared instead and one JSON object (accuracy, "
        "macro F1, Matthews correlation) is printed. With an image classifier, --input takes "
        "image files and one label is printed per image, in order; --rollout DIR also writes "
        "each image with its attention rollout as a PNG.",
    )
    p.add_argument(
        "--model", required=True, metavar="DIR",
        help="classifier directory written by `aiayn train classify` (or one of its "
        "checkpoints, RUN/checkpoints/step_N)",
    )  # fmt: skip
    p.add_argument(
        "--input", default=["-"], nargs="+", metavar="FILE",
        help="texts: a plain text file (one per line), or a .tsv/.csv/.jsonl table read by "
        "--text-column (and --pair-column) [standard input, plain text]; images: one or more "
        "image files (.png, .jpg, …)",
    )  # fmt: skip
    p.add_argument(
        "--rollout", metavar="DIR", default=None,
        help="image classifiers with attention: also write, per image, a PNG of the image with "
        "its attention rollout (Abnar & Zuidema 2020) into DIR",
    )  # fmt: skip
    p.add_argument("--text-column", default="sentence", help="column of the text [sentence]")
    p.add_argument(
        "--pair-column", default=None, help="column of the second text of a pair [unset]"
    )
    p.add_argument(
        "--label-column", default="label", help="column of the gold label, for --score [label]"
    )
    p.add_argument("--probs", action="store_true", help="also print every label's probability")
    p.add_argument(
        "--score", action="store_true",
        help="score the predictions against the table's --label-column instead of printing them",
    )  # fmt: skip
    p.add_argument(
        "--max-len", type=positive_int, default=None,
        help="tokens per example, longer ones cut [the model's max_len]",
    )  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=64, help="examples per batch [64]")
    p.add_argument("--device", default="cpu", help="cpu, cuda, … [cpu]")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aiayn.classifier import classify, load_classifier
    from aiayn.data.labelled import file_format, read_labelled, read_texts
    from aiayn.errors import ConfigError, DataError
    from aiayn.evaluate.classification import classification_scores
    from aiayn.models.serialization import arch_of

    if arch_of(args.model)[1] == "vision":
        return _run_images(args)
    if args.rollout is not None:
        raise ConfigError("--rollout applies to image classifiers; this model classifies texts")
    if len(args.input) != 1:
        raise ConfigError(f"--input: a text classifier reads one file, {len(args.input)} given")
    args.input = args.input[0]
    model, tokenizer, labels = load_classifier(args.model, args.device)
    if args.score:
        if args.input == "-" or file_format(args.input) is None:
            raise DataError(
                f"{args.input}: --score needs a .tsv, .csv or .jsonl table with a "
                f"{args.label_column!r} column"
            )
        data = read_labelled(args.input, args.text_column, args.pair_column, args.label_column)
        gold = labels.ids(data)  # a label the model does not know: file, line and column named
    else:
        data = read_texts(args.input, args.text_column if file_format(args.input) else None,
                          args.pair_column)  # fmt: skip
    predictions = classify(
        model, data.texts, data.pairs, tokenizer=tokenizer, labels=labels,
        max_len=args.max_len, batch_size=args.batch_size,
    )  # fmt: skip
    if args.score:
        predicted = labels.ids([p.label for p in predictions])
        scores = classification_scores(gold, predicted, len(labels))
        print(json.dumps({**scores, "examples": len(gold), "model": args.model}))
        return 0
    out = []
    if args.probs:
        out.append("\t".join(["label", *labels.names]))
    for p in predictions:
        fields = (
            [p.label, *(f"{p.probs[name]:.6f}" for name in labels.names)]
            if args.probs
            else [p.label]
        )
        out.append("\t".join(fields))
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0


def _run_images(args: argparse.Namespace) -> int:
    """One label per image file (with --probs, each label's probability), in input order."""
    from aiayn.classifier import classify_images, explain_images, load_image_classifier
    from aiayn.errors import ConfigError

    if args.score or args.input == ["-"]:
        raise ConfigError(
            "--input: an image classifier reads image files (--input a.png b.jpg …); "
            "--score and standard input are for texts"
        )
    model, normalization, labels = load_image_classifier(args.model, args.device)
    predictions = classify_images(
        model, args.input, normalization=normalization, labels=labels,
        batch_size=args.batch_size,
    )  # fmt: skip
    out = ["\t".join(["label", *labels.names])] if args.probs else []
    for p in predictions:
        probs = [f"{p.probs[name]:.6f}" for name in labels.names] if args.probs else []
        out.append("\t".join([p.label, *probs]))
    if args.rollout is not None:
        explain_images(args.model, args.input, args.rollout, args.device)
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0
