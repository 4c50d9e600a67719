"""precision="auto": bf16 only where the machine multiplies bf16 natively (measured)."""

import json
import logging
import math
import platform
from pathlib import Path

import pytest
import torch

from aiayn.tasks.translation import train_translation
from aiayn.train import precision as precision_module
from aiayn.train.precision import FAST_FRACTION, SLOW_FACTOR, resolve_precision

from conftest import TINY_MODEL, TINY_TASK, files, records, tiny_train_config, train

CPU = torch.device("cpu")


def fake_slowdown(monkeypatch, value: float) -> None:
    monkeypatch.setattr(precision_module, "cpu_bf16_slowdown", lambda: value)


@pytest.mark.parametrize("requested", ["fp32", "bf16", "fp16"])
def test_explicit_precisions_pass_through(requested, monkeypatch):
    fake_slowdown(monkeypatch, 60.0)
    assert resolve_precision(requested, CPU) == requested


@pytest.mark.parametrize(
    ("slowdown", "expected"),
    [(0.25, "bf16"), (FAST_FRACTION, "bf16"), (1.0, "fp32"), (60.0, "fp32")],
    ids=["amx", "just-fast-enough", "parity", "emulated"],
)
def test_auto_picks_bf16_only_where_it_is_clearly_faster(slowdown, expected, monkeypatch):
    fake_slowdown(monkeypatch, slowdown)
    assert resolve_precision("auto", CPU) == expected


def test_auto_on_devices_without_a_cpu_probe(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_bf16_slowdown", lambda: pytest.fail("probed"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


def test_explicit_bf16_on_a_cpu_without_it_warns_with_the_fix(monkeypatch, caplog):
    fake_slowdown(monkeypatch, 60.0)
    with caplog.at_level(logging.WARNING, logger="aiayn.train.precision"):
        assert resolve_precision("bf16", CPU) == "bf16"  # the user's choice stands
    assert "60×" in caplog.text and "--precision auto" in caplog.text
    caplog.clear()
    fake_slowdown(monkeypatch, 0.3)
    with caplog.at_level(logging.WARNING, logger="aiayn.train.precision"):
        resolve_precision("bf16", CPU)
    assert caplog.text == ""


def cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return set()
    lines = (line for line in cpuinfo.read_text().splitlines() if line.startswith("flags"))
    return set(next(lines, "").split(":", 1)[-1].split())


def test_the_probe_agrees_with_the_cpu_it_runs_on():
    slowdown = precision_module.cpu_bf16_slowdown()
    assert math.isfinite(slowdown) and slowdown > 0
    flags = cpu_flags() if platform.machine() in ("x86_64", "AMD64") else set()
    # The unambiguous x86 cases: bf16 instructions (AMX tiles, or AVX-512's bf16 dot products),
    # or none at all (emulated: 25-80x fp32's time); elsewhere (AVX-512 without BF16, ARM)
    # either can happen. With bf16 instructions the probe is somewhere between AMX's ~0.3 and
    # parity (0.84 seen on a CI machine with the flags), never emulation's crawl.
    if "amx_bf16" in flags or "avx512_bf16" in flags:
        assert slowdown < SLOW_FACTOR, f"bf16 CPU, yet bf16 took {slowdown:.2f}× fp32's time"
    elif flags and "avx2" in flags and "avx512f" not in flags:
        assert slowdown > SLOW_FACTOR, f"AVX2-only CPU, yet bf16 took {slowdown:.2f}× fp32's"


@pytest.mark.parametrize(("slowdown", "expected"), [(0.25, "bf16"), (60.0, "fp32")])
def test_trainer_trains_in_the_resolved_precision(
    slowdown, expected, number_data, tmp_path, monkeypatch
):
    fake_slowdown(monkeypatch, slowdown)
    dtypes = []
    real_autocast = torch.autocast

    def spy(device_type, dtype=None, **kwargs):
        dtypes.append(dtype)
        return real_autocast(device_type, dtype=dtype, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    out = tmp_path / "run"
    train_translation(
        *files(number_data), out, TINY_MODEL, tiny_train_config(max_steps=2, precision="auto"),
        TINY_TASK, progress=False,
    )  # fmt: skip
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["precision"] for r in records if r["split"] == "start"] == [expected]
    assert json.loads((out / "train_config.json").read_text())["precision"] == "auto"
    # fp32 enters no autocast at all; bf16 enters it for every training step
    assert dtypes == ([torch.bfloat16] * 2 if expected == "bf16" else [])


#: bf16 loss vs fp32 loss, relative. bf16 keeps 8 significant bits (2^-9 ≈ 0.2% rounding per
#: value); a loss averages ~400 tokens' terms, and over these 8 steps it moved at most 0.02%
#: from fp32's on an AMX CPU: 0.2% leaves 10× for other CPUs' kernels, while a wrong cast (an
#: fp16 overflow, a bf16 optimiser state) or diverging updates land far outside it.
BF16_REL_TOL = 2e-3


def test_bf16_training_tracks_fp32(number_data, tmp_path):
    """The same 8 updates (same batches, same dropout masks: the masks are drawn per element,
    whatever the dtype) in fp32 and in bf16 autocast: finite losses, each within BF16_REL_TOL
    of fp32's, and so is the validation loss of the resulting weights."""
    losses, valid = {}, {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        train(number_data, out, max_steps=8, valid_every=8, precision=precision)
        assert [r["precision"] for r in records(out, "start")] == [precision]
        losses[precision] = [r["loss"] for r in records(out, "train")]
        valid[precision] = records(out, "valid")[-1]["loss"]
    assert len(losses["bf16"]) == 8 and all(map(math.isfinite, losses["bf16"]))
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=BF16_REL_TOL)
    assert valid["bf16"] == pytest.approx(valid["fp32"], rel=BF16_REL_TOL)
    assert losses["bf16"] != losses["fp32"]  # bf16 did run: its rounding shows
    assert losses["fp32"][-1] < losses["fp32"][0] - 0.5  # and it learned something to track
