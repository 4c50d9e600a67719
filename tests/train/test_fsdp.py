"""`--fsdp` as a flag and its one-line errors; 2-process FSDP training itself is tested against
DDP in test_lm_distributed.py."""

import pytest

from aiayn.cli import build_parser
from aiayn.cli.train import build_configs
from aiayn.errors import ConfigError

from conftest import train


def test_fsdp_is_a_training_flag_of_every_task_off_by_default(tmp_path):
    for task, inputs in (("lm", ["--train-text", "t.txt"]),
                         ("translation", ["--train-src", "a", "--train-tgt", "b",
                                          "--valid-src", "c", "--valid-tgt", "d"])):  # fmt: skip
        args = ["train", task, *inputs, "--out", str(tmp_path)]
        assert build_configs(build_parser().parse_args(args))[1].fsdp is False
        assert build_configs(build_parser().parse_args([*args, "--fsdp"]))[1].fsdp is True


def test_fsdp_help_says_what_it_shards_and_how_to_launch_it(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "lm", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--fsdp" in help_text
    for words in ("parameters, gradients and optimizer state", "fully_shard", "torchrun"):
        assert words in help_text


def test_fsdp_in_one_process_is_a_one_line_error(number_data, tmp_path):
    with pytest.raises(ConfigError) as err:
        train(number_data, tmp_path / "run", fsdp=True)
    message = str(err.value)
    assert "\n" not in message and "torchrun --nproc_per_node" in message
