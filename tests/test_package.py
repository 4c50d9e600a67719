"""Importing aiayn puts large CPU tensors on transparent huge pages unless the user said no."""

import os
import subprocess
import sys

SHOW = "import aiayn, os; print(os.environ['THP_MEM_ALLOC_ENABLE'])"


def run(env_value):
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if env_value is not None:
        env["THP_MEM_ALLOC_ENABLE"] = env_value
    return subprocess.run(
        [sys.executable, "-c", SHOW], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_huge_pages_on_by_default_and_the_users_choice_wins():
    assert run(None) == "1"
    assert run("0") == "0"
