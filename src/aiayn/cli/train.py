"""`aiayn train TASK`: train a model for a task; `aiayn train --train-src …` (no task word) is
`aiayn train translation --train-src …`.

Settings come, lowest priority first, from the defaults, the `--preset`, a `--config` JSON
recipe ({"preset": …, "model": {…}, "train": {…}, "data": {…}}), and the flags. The recipe's
"train" section holds `TrainConfig` options and the task's own (where they lived before tasks
had configs), "data" the task's. The flags of `TrainConfig` and of the task's config are
generated from their fields (`aiayn.cli.flags`); the model's are written here.

Adding a task: its config dataclass, its run function, and one `TaskCommand` in `TASKS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from aiayn.cli.flags import add_flags, field_types, given
from aiayn.config import Norm, Positional
from aiayn.errors import ConfigError
from aiayn.tasks import classify, image, lm, mlm, translation
from aiayn.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Input:
    """A file argument of a task's run function, as a flag (`train_src` → `--train-src`)."""

    help: str
    required: bool = True  # else the run function gets None when the flag is not given
    many: bool = False  # one or more files (a list)


@dataclass(frozen=True)
class TaskCommand:
    """What `aiayn train NAME` needs of a task."""

    help: str  # one line in `aiayn train --help`
    inputs: Mapping[str, Input]  # the run function's file arguments
    config: type  # the task's config dataclass: flags, the recipe's "data" (and "train") fields
    metrics: Mapping[str, bool]  # what its validation reports → higher is better
    # train(**inputs, out_dir=, model_config=, train_config=, task_config=, resume=, progress=)
    # -> TrainResult; imports nothing heavy until called (`aiayn --help` stays fast)
    train: Callable[..., Any]
    presets: tuple[str, ...]  # `aiayn.models.presets` of the task's model family (--preset)
    default_preset: str
    # the task's own model flags (the model config's field → argparse keywords), beside the
    # shared --dropout, --positional, --max-len
    model_flags: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)


TASKS: dict[str, TaskCommand] = {
    "translation": TaskCommand(
        "an encoder-decoder on parallel text, the paper's task (the default)",
        {
            "train_src": Input("training source text, one sentence a line (.gz ok)"),
            "train_tgt": Input("training target text, line i translates source line i"),
            "valid_src": Input("validation source text"),
            "valid_tgt": Input("validation reference translations"),
        },
        translation.TranslationConfig, translation.METRICS, translation.train_translation,
        presets=("tiny", "small", "base", "big"), default_preset="small",
    ),
    "lm": TaskCommand(
        "a decoder-only language model (GPT) on plain text",
        {
            "train_text": Input("training text, UTF-8 (.gz ok); each file one document", many=True),
            "valid_text": Input("validation text; unset = the last --valid-fraction of the "
                                "training text", required=False, many=True),
        },
        lm.LMConfig, lm.METRICS, lm.train_lm,
        presets=("gpt-mini", "baby-gpt", "gpt2"), default_preset="gpt-mini",
    ),
    "mlm": TaskCommand(
        "an encoder-only model (BERT) pretrained on plain text by masked-LM",
        {
            "train_text": Input("training text, UTF-8 (.gz ok), a sentence or paragraph a line",
                                many=True),
            "valid_text": Input("validation text; unset = the last --valid-fraction of each "
                                "training file's lines", required=False, many=True),
        },
        mlm.MLMConfig, mlm.METRICS, mlm.train_mlm,
        presets=("bert-tiny", "bert-mini", "bert-small", "bert-base"), default_preset="bert-mini",
    ),
    "classify": TaskCommand(
        "a classifier of texts or text pairs, fine-tuned from a pretrained encoder (BERT)",
        {
            "train": Input("labelled training data: .tsv (GLUE, with a header), .csv or .jsonl"),
            "valid": Input("labelled validation data, same columns"),
            "init": Input("pretrained encoder directory (aiayn train mlm); unset = from "
                          "scratch, a WordPiece vocabulary trained on the training texts",
                          required=False),
        },
        classify.ClassifyConfig, classify.METRICS, classify.train_classify,
        presets=("bert-tiny", "bert-mini", "bert-small", "bert-base"), default_preset="bert-mini",
    ),
    "image": TaskCommand(
        "an image classifier (ViT, or PoolFormer with --mixer pooling) on the embedded digits "
        "or on ImageFolder directories",
        {
            "train": Input("training images: a folder of class folders, TRAIN/CLASS/*.png|jpg; "
                           "unset with --data digits", required=False),
            "valid": Input("validation images, the same layout", required=False),
        },
        image.ImageConfig, image.METRICS, image.train_image,
        presets=("vit-tiny", "vit-small", "vit-base"), default_preset="vit-tiny",
        model_flags={
            "mixer": dict(choices=["attention", "pooling"], help="each block's token mixer: "
                          "self-attention (ViT) or 3×3 average pooling (PoolFormer; implies "
                          "--pooling mean) [attention]"),
            "pooling": dict(choices=["cls", "mean"], help="what the head reads: the [CLS] "
                            "token or the mean of the patch tokens [cls]"),
            "image_size": dict(type=int, metavar="PIXELS", help="images are resized to this "
                               "square size [the preset's: 224]"),
            "patch_size": dict(type=int, metavar="PIXELS", help="side of the square patches, "
                               "each a token [the preset's: 16]"),
        },
    ),
}  # fmt: skip
DEFAULT_TASK = "translation"  # what `aiayn train` without a task word trains

_MODEL_FLAGS = ("dropout", "positional", "norm", "max_len")
_RECIPE_KEYS = ("preset", "model", "train", "data", "comment")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model for a task (translation by default)",
        description="Train a model for TASK; `aiayn train TASK --help` explains its flags. "
        "Without a task word the flags are translation's: `aiayn train --train-src …` is "
        "`aiayn train translation --train-src …`. The --out directory becomes a model "
        "directory (config, weights, tokenizer; checkpoints while training).",
        default_subcommand=DEFAULT_TASK,
    )
    tasks = p.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, command in TASKS.items():
        _add_task_parser(tasks, name, command)


def _add_task_parser(tasks, name: str, command: TaskCommand) -> None:
    p = tasks.add_parser(
        name,
        help=command.help,
        description=f"Train {command.help}. Settings come, lowest priority first, from the "
        "defaults shown in [brackets], the --preset, a --config recipe and the flags. The "
        "--out directory becomes a model directory.",
    )
    g = p.add_argument_group("input and output")
    for arg, spec in command.inputs.items():
        g.add_argument(
            "--" + arg.replace("_", "-"), dest=arg, required=spec.required, help=spec.help,
            nargs="+" if spec.many else None,
        )  # fmt: skip
    g.add_argument("--out", required=True, help="output model directory")
    g.add_argument(
        "--config",
        help="JSON recipe with 'preset', 'model', 'train' and 'data' sections; flags override it",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with the model and the "
        "training and task options it was started with (saved there); a --config or flags "
        "given now override those options (say, a larger --max-steps), with a warning",
    )
    g.add_argument(
        "--force",
        action="store_true",
        help="train afresh into an --out that is not empty but holds no run (no checkpoints): "
        "the run replaces files of the same name there and starts a new metrics.jsonl (a run's "
        "checkpoints are never overwritten: --resume them, or delete them)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    g = p.add_argument_group("model")
    g.add_argument(
        "--preset", choices=command.presets, help=f"model size [{command.default_preset}]"
    )
    g.add_argument("--dropout", type=float, help="P_drop on sub-layer outputs and embeddings [0.1]")
    g.add_argument(
        "--positional",
        choices=get_args(Positional),
        help="position encoding: absolute sinusoidal (§3.5) or learned; relative rope, alibi, "
        "t5 (bucketed bias) or shaw (clipped distances); none [the preset's]",
    )
    g.add_argument(
        "--norm",
        choices=get_args(Norm),
        help="normalisation: layer (LayerNorm), rms (RMSNorm), batch (BatchNorm over real "
        "tokens, for the experiment in docs/why.md) [layer]",
    )
    g.add_argument(
        "--max-len",
        type=int,
        help="longest sequence in tokens: the model's positions, and the longest training "
        "example kept where the task skips longer ones [the preset's; translation keeps pairs "
        "up to 256]",
    )

    for field_name, spec in command.model_flags.items():
        g.add_argument("--" + field_name.replace("_", "-"), dest=field_name, **spec)

    # the task's max_len (if it has one) follows the model's --max-len: no flag of its own
    add_flags(p.add_argument_group(f"{name} options"), command.config, exclude={"max_len"})
    add_flags(
        p.add_argument_group("training options (every task)"), TrainConfig,
        choices={"best_metric": list(command.metrics)},
    )  # fmt: skip
    p.set_defaults(run=run)


def build_configs(args: argparse.Namespace) -> tuple[Any, TrainConfig, Any]:
    """(ModelConfig, TrainConfig, the task's config) from preset < recipe file < flags; on
    --resume, the run's saved training and task options come before the recipe."""
    from aiayn.models import presets

    command = TASKS[args.task]
    recipe: dict[str, Any] = {}
    if args.config:
        recipe = _read_recipe(Path(args.config))
    source = args.config or "command line"
    preset = args.preset or recipe.get("preset", command.default_preset)
    model_fields = dict(recipe.get("model", {}))
    saved_train, saved_task = _saved_fields(args) if args.resume else ({}, {})
    train_fields, task_fields = _recipe_fields(recipe, command.config, source)
    train_fields = {**saved_train, **train_fields}
    task_fields = {**saved_task, **task_fields}
    for name in (*_MODEL_FLAGS, *command.model_flags):
        if getattr(args, name, None) is not None:
            model_fields[name] = getattr(args, name)
            if args.resume:  # the task builds the run's own model from --out/config.json
                log.warning("--resume: the model is the run's own; --%s is ignored",
                            name.replace("_", "-"))  # fmt: skip
    if model_fields.get("mixer") == "pooling":
        model_fields.setdefault("pooling", "mean")  # pooling mixes the grid only: no [CLS]
    train_fields.update(given(args, TrainConfig))
    task_fields.update(given(args, command.config))
    for name in ("valid_every", "valid_every_minutes"):
        if train_fields.get(name) == 0:
            train_fields[name] = None  # 0 turns off an interval a recipe sets
    if "max_len" in model_fields and "max_len" in field_types(command.config):
        task_fields.setdefault("max_len", model_fields["max_len"])
    model_cfg = _build(lambda **kw: presets.get(preset, **kw), model_fields, source, "model")
    train_cfg = _build(TrainConfig, train_fields, source, "train")
    task_cfg = _build(command.config, task_fields, source, "data")
    _warn_changed(args.out, train_cfg, saved_train)
    _warn_changed(args.out, task_cfg, saved_task)
    return model_cfg, train_cfg, task_cfg


def _saved_fields(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training and task options the run in --out was started with (its
    `train_config.json` and `task_config.json`), so that `--resume` alone continues the run
    as it was: a resumed run equals an uninterrupted one only under the same options. A run
    saved before a file existed lacks it: its options then come from the defaults."""
    from aiayn.io import read_json_object

    out = Path(args.out)
    saved = {}
    for name in ("train_config.json", "task_config.json"):
        path = out / name
        saved[name] = read_json_object(path, "saved run options") if path.is_file() else {}
    train = {k: v for k, v in saved["train_config.json"].items() if k != "schema_version"}
    task = dict(saved["task_config.json"])
    kind = task.pop("task", args.task)
    if kind != args.task:
        raise ConfigError(
            f"{out} holds a {kind} run, not a {args.task} one: resume it with "
            f"`aiayn train {kind} … --resume`"
        )
    # "train" keys TrainConfig lacks go to the task's config: runs saved before translation's
    # options (label smoothing, token batching, …) moved out of TrainConfig. Options this
    # version no longer has (best_higher, …) cannot take effect: said, then left out.
    config = TASKS[args.task].config
    known = set(field_types(TrainConfig)) | set(field_types(config))
    for name in sorted((set(train) | set(task)) - known):
        log.warning("%s: saved option '%s' is no longer one; resuming without it", out, name)
        train.pop(name, None)
        task.pop(name, None)
    return _recipe_fields({"train": train, "data": task}, config, f"{out}'s saved options")


def _warn_changed(out: str, config: Any, saved: dict[str, Any]) -> None:
    """One warning per saved option that this resume changes: the run goes on differently."""
    for name, value in saved.items():
        now = getattr(config, name)
        if now != value:
            log.warning(
                "resuming %s with %s = %r (the run was started with %r)", out, name, now, value
            )


def run(args: argparse.Namespace) -> int:
    import os

    from aiayn.train.checkpoint import check_out_dir

    command = TASKS[args.task]
    model_cfg, train_cfg, task_cfg = build_configs(args)
    # Before the task reads data or writes anything into --out. Under torchrun rank 0 alone
    # looks: another rank may look after rank 0 has begun writing there.
    if os.environ.get("RANK", "0") == "0":
        check_out_dir(Path(args.out), args.resume, args.force)
    result = command.train(
        **{name: getattr(args, name) for name in command.inputs},
        out_dir=args.out, model_config=model_cfg, train_config=train_cfg, task_config=task_cfg,
        resume=args.resume, progress=False if args.no_progress else None,
    )  # fmt: skip
    print(json.dumps({"out": args.out, **dataclasses.asdict(result)}, default=str))
    return 0


def _read_recipe(path: Path) -> dict[str, Any]:
    from aiayn.io import read_json_object

    recipe = read_json_object(path, "training recipe")
    unknown = set(recipe) - set(_RECIPE_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: a recipe has the keys preset, model, train, data; found {sorted(unknown)}"
        )
    for section in ("model", "train", "data"):
        value = recipe.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(
                f"{path}: section '{section}' must be a JSON object of name: value pairs, "
                f"not {type(value).__name__}"
            )
    if not isinstance(recipe.get("preset", ""), str):
        raise ConfigError(f"{path}: 'preset' must be a string (tiny, small, base, big)")
    return recipe


def _recipe_fields(
    recipe: dict[str, Any], task_config: type, source: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe's training and task options, each checked against its field's type: the
    "train" section's keys go to TrainConfig or, failing that, to the task's config; the
    "data" section's to the task's config."""
    train_types, task_types = field_types(TrainConfig), field_types(task_config)
    train_fields: dict[str, Any] = {}
    task_fields: dict[str, Any] = {}
    for section in ("train", "data"):
        for key, value in recipe.get(section, {}).items():
            where = f"{source}: section '{section}'"
            if section == "train" and key in train_types:
                kind, fields = train_types[key], train_fields
            elif key in task_types:
                kind, fields = task_types[key], task_fields
            else:
                known = "a training or task option" if section == "train" else "a task option"
                raise ConfigError(f"{where}: unknown option '{key}' (not {known}); check spelling")
            problem = kind.problem(value)
            if problem:
                raise ConfigError(f"{where}: '{key}' {problem}")
            fields[key] = tuple(value) if isinstance(value, list) else value
    return train_fields, task_fields


def _build(factory, fields: dict[str, Any], source: str, section: str):
    try:
        return factory(**fields)
    except TypeError as err:  # the model section: an unknown field name
        raise ConfigError(f"{source}: section '{section}': {err}") from None
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
