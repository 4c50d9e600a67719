"""Fully sharded data parallelism (FSDP2) for the Trainer (`TrainConfig.fsdp`, `--fsdp`).

Under DDP every rank holds the whole model, its gradients and Adam's two moments (16 bytes a
parameter in fp32). Under FSDP each of the N ranks keeps 1/N of every parameter, of its
gradient and of its optimiser state, so a model past one device's memory trains:

- `shard` applies `torch.distributed.fsdp.fully_shard` to every `Block` of the model's stacks,
  then to the model itself (the root: embeddings, positions, final norm, output layer). A
  block's parameters are all-gathered just before its forward (and its backward) and freed
  after, so the peak holds one whole block and the root, not the whole model. A tied output
  layer is the embedding's own parameter, so it stays one parameter in the root's group: tied.
- Gradients are reduce-scattered, averaged over the ranks as DDP's all-reduce averages them,
  so the Trainer's normalisation (multiply by world_size / tokens) is the same for both, and
  the optimiser steps on each rank's shards (DTensors).

Whole weights are needed where the Trainer writes files, on rank 0 only. `Sharding` keeps an
unsharded copy of the model (and of its EMA) on rank 0's CPU: `gather` fills it from the
shards (`get_model_state_dict(full_state_dict=True, cpu_offload=True)`: one tensor at a time,
straight to the CPU), and the checkpoint and the exported model are written from it exactly as
without FSDP: `model.safetensors` holds whole tensors (a tied matrix once), and the optimiser
state sits in `training_state.pt` in `optimizer.state_dict()`'s own layout (parameters
numbered, not named). So `--resume`, `aiayn average` and `load_pretrained` see no difference,
and a run checkpointed under FSDP resumes under DDP and the other way round. On resume rank 0
reads the files into its copy and every rank receives its shards
(`set_model_state_dict(broadcast_from_rank0=True)`, and the same for the optimiser).

Validation runs on every rank, through the shards (`unsharded_root`), not on rank 0 alone: a
sharded module's forward is a collective that every rank must join, and a whole copy on rank
0's device is what FSDP is there to avoid (on its CPU it would validate at CPU speed). Every
rank scores the same validation data with the same weights, so each finds the same metrics;
rank 0 logs them and decides. That needs a validation whose number of forwards follows from
the data and the weights alone (the LM's fixed windows; greedy or beam decoding on identical
devices). The EMA of the weights is sharded like the model (`ema ← d·ema + (1-d)·θ` is
element-wise, so each rank averages its own shards), validated the same way, and gathered
into rank 0's copy to be saved.

Every rank must build the same initial weights before sharding (the `train_*` functions seed
before building the model): each keeps its own slice of what it built, where DDP would
broadcast rank 0's.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from aiayn.nn.block import Block
from aiayn.train import checkpoint as ckpt
from aiayn.train.distributed import DistInfo


def shard(model: nn.Module, mesh: Any) -> None:
    """`fully_shard` every `Block` of `model`, then `model` itself (in place: its parameters
    become DTensors holding this rank's shards, on the mesh's device)."""
    from torch.distributed.fsdp import fully_shard

    for block in [m for m in model.modules() if isinstance(m, Block)]:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


@contextlib.contextmanager
def unsharded_root(model: nn.Module) -> Iterator[None]:
    """Gather the root's own parameters (embeddings, final norm, output layer) for the span of
    a validation. Its blocks still gather and free themselves around each forward; the root
    must stay whole because decoding calls `start`/`step`, not the `forward` that FSDP hooks."""
    model.unshard()
    try:
        yield
    finally:
        model.reshard()


class Sharding:
    """The Trainer's FSDP side: shards `model` (and `ema`, the EMA's module) over the ranks,
    and moves whole weights and optimiser state between the shards and rank 0's files.

    Call it with the models still whole (on the CPU): rank 0 copies them first, then each rank
    keeps its shards on `device`. Every method is a collective: all ranks call it together.
    """

    def __init__(
        self, model: nn.Module, ema: nn.Module | None, device: torch.device, dist: DistInfo
    ) -> None:
        from torch.distributed.device_mesh import init_device_mesh

        if device.type == "cuda":
            torch.cuda.set_device(device)
        mesh = init_device_mesh(device.type, (dist.world_size,))
        self.is_main = dist.is_main
        # Rank 0's whole copies, on its CPU, for the files (taken before sharding frees them).
        self.model_copy = copy.deepcopy(model).cpu() if self.is_main else None
        self.ema_copy = copy.deepcopy(ema).cpu() if self.is_main and ema is not None else None
        for module in (model, ema):
            if module is not None:
                shard(module, mesh)

    # --- weights ------------------------------------------------------------------------------

    def gather(self, sharded: nn.Module, ema: bool = False) -> nn.Module | None:
        """Rank 0's copy of `sharded` (the model, or with `ema` the EMA) holding its current
        whole weights; None on the other ranks."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(sharded, options=options)  # whole on rank 0, {} elsewhere
        whole = self.ema_copy if ema else self.model_copy
        if whole is not None:
            whole.load_state_dict(state)  # a tied matrix comes under both names: same values
        return whole

    def scatter(self, sharded: nn.Module, ema: bool = False) -> None:
        """Give every rank its shards of rank 0's copy (after rank 0 loaded it from a file)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        whole = self.ema_copy if ema else self.model_copy
        state = whole.state_dict() if whole is not None else {}
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_model_state_dict(sharded, state, options=options)

    # --- optimiser state ----------------------------------------------------------------------

    def gather_optimizer(
        self, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> dict[str, Any] | None:
        """The whole optimiser state on rank 0, laid out as `optimizer.state_dict()` lays out
        an unsharded one (so checkpoints do not depend on FSDP); None on the other ranks."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        named = get_optimizer_state_dict(model, optimizer, options=options)
        if not self.is_main:
            return None
        index = {name: i for i, name in enumerate(_param_names(model, optimizer))}
        return {
            "state": {index[name]: value for name, value in named["state"].items()},
            "param_groups": [
                {**g, "params": [index[name] for name in g["params"]]}
                for g in named["param_groups"]
            ],
        }

    def scatter_optimizer(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any] | None
    ) -> None:
        """Load rank 0's `state` (`gather_optimizer`'s layout; None on the other ranks) into
        every rank's shards of the optimiser state."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        named: dict[str, Any] = {}
        if self.is_main:
            names = _param_names(model, optimizer)
            named = {
                "state": {names[i]: value for i, value in state["state"].items()},
                "param_groups": [
                    {**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]
                ],
            }
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_optimizer_state_dict(model, optimizer, named, options=options)

    # --- checkpoints --------------------------------------------------------------------------

    def load(
        self,
        checkpoint: ckpt.Checkpoint,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        ema: nn.Module | None,
    ) -> tuple[dict[str, Any], bool]:
        """Resume from `checkpoint`: rank 0 reads its files, every rank receives its shards of
        the weights, the optimiser state and (with `ema`) the EMA. Returns the training state
        (every rank reads it: the sampler, RNG and counters) and whether the EMA was loaded
        (False: the run kept none until now)."""
        if self.is_main:
            state = ckpt.load_checkpoint(checkpoint, self.model_copy)
        else:
            state = ckpt.load_training_state(checkpoint)
        self.scatter(model)
        self.scatter_optimizer(model, optimizer, state["optimizer"] if self.is_main else None)
        # every rank sees the checkpoint's files (it read training_state.pt from there)
        has_ema = ema is not None and (checkpoint.path / ckpt.EMA_WEIGHTS).is_file()
        if has_ema:
            if self.is_main:
                ckpt.load_ema(checkpoint, self.ema_copy)
            self.scatter(ema, ema=True)
        return state, has_ema


def _param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The name of each optimised parameter, in the optimiser's order (the numbers of
    `optimizer.state_dict()`); a tied parameter by its first name, as torch names it."""
    names = {id(p): name for name, p in model.named_parameters()}
    return [names[id(p)] for group in optimizer.param_groups for p in group["params"]]


__all__ = ["Sharding", "shard", "unsharded_root"]
