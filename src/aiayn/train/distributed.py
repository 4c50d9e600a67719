"""Data-parallel training with `torch.distributed` (launched by `torchrun`).

`torchrun --nproc_per_node N -m aiayn train …` sets RANK, WORLD_SIZE and LOCAL_RANK; each rank
then reads its own share of the token batches, gradients are averaged by DDP, and only rank 0
logs and saves. gloo serves CPUs, nccl GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (or run alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def all_reduce_sum(value: float, device: torch.device, info: DistInfo) -> float:
    """Sum a number over all ranks (identity when not distributed)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item())


def broadcast_float(value: float, device: torch.device, info: DistInfo) -> float:
    """Rank 0's number (e.g. its clock), the same on every rank."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def broadcast_flag(flag: bool, device: torch.device, info: DistInfo) -> bool:
    """Rank 0's decision (e.g. stop now), the same on every rank."""
    return bool(broadcast_float(float(flag), device, info))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
