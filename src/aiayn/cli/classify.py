"""`aiayn classify`: label texts or text pairs with a fine-tuned classifier (`aiayn.classify`)."""

from __future__ import annotations

import argparse
import json
import sys

from aiayn.cli.translate import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "classify",
        help="label texts or text pairs with a classifier from `aiayn train classify`",
        description="Print one label per input line (plain text) or row (.tsv as GLUE, .csv, "
        ".jsonl), in input order; with --probs also each label's probability, tab-separated "
        "after it, in the order of the model's labels (a header line names them). With "
        "--score the input's own labels are compared instead and one JSON object (accuracy, "
        "macro F1, Matthews correlation) is printed.",
    )
    p.add_argument(
        "--model", required=True, metavar="DIR",
        help="classifier directory written by `aiayn train classify` (or one of its "
        "checkpoints, RUN/checkpoints/step_N)",
    )  # fmt: skip
    p.add_argument(
        "--input", default="-", metavar="FILE",
        help="texts: a plain text file (one per line), or a .tsv/.csv/.jsonl table read by "
        "--text-column (and --pair-column) [standard input, plain text]",
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
    from aiayn.errors import DataError
    from aiayn.evaluate.classification import classification_scores

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
