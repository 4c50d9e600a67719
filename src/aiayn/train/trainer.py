"""The task-agnostic training loop: the paper's recipe plus what a real run needs.

A task (translation, language modelling, …) supplies the data and the loss; the `Trainer`
supplies everything else: Adam with a warm-up schedule, gradient accumulation, clipping,
mixed precision, data parallelism (DDP, or FSDP: `aiayn.train.fsdp`), validation, best/last-K
checkpoints written atomically, exact resumption, early stopping, time limits, metrics logs and
a progress bar.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from aiayn.devices import resolve_device
from aiayn.errors import ConfigError
from aiayn.io import atomic_write_text
from aiayn.train import checkpoint as ckpt
from aiayn.train import distributed as dist_utils
from aiayn.train.allocator import keep_freed_memory
from aiayn.train.config import TrainConfig
from aiayn.train.ema import WeightEMA
from aiayn.train.loss import LossOutput
from aiayn.train.precision import resolve_precision
from aiayn.train.schedules import learning_rate

log = logging.getLogger(__name__)


class ResumableSampler(Protocol):
    """Yields lists of example indices; remembers its position (see `TokenBatchSampler`)."""

    epoch: int

    def __iter__(self) -> Iterator[list[int]]: ...
    def __len__(self) -> int: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TrainingTask(Protocol):
    """What the Trainer needs from a task."""

    def train_sampler(self, rank: int, world_size: int) -> ResumableSampler:
        """Batches of training example indices, this rank's share."""

    def collate(self, indices: list[int], device: torch.device) -> Any:
        """The batch for `indices`, on `device`."""

    def set_progress(self, step: int, minutes: float) -> None:
        """Called before each update with its step (from 1) and the run's minutes (rank 0's
        clock, resumes included), for a loss that changes as training goes (a late R-Drop).
        Anything derived must follow from these two alone, so that a resume is exact."""

    def loss(self, model: nn.Module, batch: Any) -> LossOutput:
        """Summed loss over the batch's target tokens (not averaged)."""

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics, e.g. {"loss": …, "ppl": …, "bleu": …}: on rank 0 only, or under
        FSDP on every rank at once (a sharded forward is a collective), which must then run the
        same forwards (the same data, in the same batches) and find the same metrics."""

    def higher_is_better(self, metric: str) -> bool:
        """Whether a larger `metric` (a key of `validate`'s result) is better: True for BLEU
        or accuracy, False for a loss. Raises ConfigError for a metric the task does not
        report (the Trainer asks for `best_metric` before training)."""

    def export(self, model: nn.Module, directory: Path) -> None:
        """Write everything inference needs (config, weights, tokenizer) into `directory`."""


@dataclass
class TrainState:
    """Counters that a checkpoint must restore for an exact resume."""

    step: int = 0  # optimiser updates done
    tokens: int = 0  # target tokens trained on (all ranks)
    best: float | None = None
    best_step: int | None = None
    bad_validations: int = 0  # consecutive validations without improvement
    history: list[dict[str, float]] = field(default_factory=list)  # validation results
    seconds: float = 0.0  # wall-clock time the run had trained at its checkpoint (for resumes)


@dataclass
class TrainResult:
    steps: int
    epochs: int
    stopped_because: str
    best: float | None
    best_step: int | None
    last_valid: dict[str, float] | None
    seconds: float


class Trainer:
    """Trains `model` on `task` under `config`, writing into `out_dir`. `d_model` (the model's
    width) scales the lr of the noam schedule, which needs it; the other schedules do not.

    `out_dir` becomes a model directory: the exported model (best validation checkpoint, or
    the average of the last K with `average_last`) beside `checkpoints/`, `metrics.jsonl` and
    `train_config.json`. With an EMA of the weights (`ema_decay`/`ema_minutes`) validation
    scores the EMA, and the best EMA is exported. Under torchrun the ranks train data-parallel:
    with DDP (each rank a replica), or with FSDP (`config.fsdp`: each rank a shard).
    """

    def __init__(
        self,
        model: nn.Module,
        task: TrainingTask,
        config: TrainConfig,
        out_dir: str | Path,
        progress: bool | None = None,
        d_model: int | None = None,
    ) -> None:
        self.config = config
        self.task = task
        # Ask the task before training, so that a metric it does not report fails now.
        self._best_higher = task.higher_is_better(config.best_metric)
        learning_rate(config, 1, d_model)  # the noam schedule without d_model fails now too
        self.d_model = d_model
        self.out_dir = Path(out_dir)
        self.ckpt_dir = self.out_dir / ckpt.CHECKPOINTS_DIR
        self.device = resolve_device(config.device, "training option 'device' =")
        self.dist = dist_utils.init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision 'fp16' needs a CUDA GPU; use 'auto' or 'fp32' on CPU")
        # "auto" becomes what is fast here; the run's config keeps "auto", the log the choice
        self.precision = resolve_precision(config.precision, self.device)
        if config.fsdp:
            self._check_fsdp()
        if self.device.type == "cpu":
            keep_freed_memory()  # reuse step buffers instead of page-faulting them anew
        self.ema: WeightEMA | None = None
        self.fsdp = None
        if config.fsdp:
            from aiayn.train.fsdp import Sharding

            # Each rank keeps the EMA of its own shards; both shard from the CPU, so that no
            # device ever holds the whole model.
            self.ema = self._new_ema(model)
            ema = self.ema.module if self.ema is not None else None
            self.fsdp = Sharding(model, ema, self.device, self.dist)
            self.model = model
        else:
            self.model = model.to(self.device)
            # Only rank 0 validates and saves, so only it keeps the EMA (replicas are equal).
            self.ema = self._new_ema(self.model) if self.dist.is_main else None
        self.train_model = self._wrap(self.model)
        self.optimizer = _build_optimizer(self.model, config)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.sampler = task.train_sampler(self.dist.rank, self.dist.world_size)
        self.state = TrainState()
        self.progress = progress
        self._metrics_file = self.out_dir / "metrics.jsonl"
        self._tb = None

    # --- public -------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until a stopping condition; return a summary. `resume` continues the latest
        checkpoint in `out_dir` exactly where it stopped."""
        cfg = self.config
        self._prepare_out_dir(resume)
        if resume:
            self._resume()
        else:
            torch.manual_seed(cfg.seed + self.dist.rank)
            random.seed(cfg.seed + self.dist.rank)
        # The run's clock continues across resumes (as fairseq's --stop-time-hours): max_minutes
        # and decay_minutes are budgets of the whole run, not of each session.
        self._clock_start = time.monotonic() - self.state.seconds
        start = {"step": self.state.step, "resume": resume, "precision": self.precision}
        self._log({"split": "start", **start})
        bar = self._progress_bar()
        last_valid: dict[str, float] | None = None
        stopped = ""
        window = _Window()
        while not stopped:
            batches = iter(self.sampler)  # the rest of the current epoch
            epoch_done = False
            while not stopped:
                group = [b for _, b in zip(range(cfg.update_freq), batches, strict=False)]
                if not group:
                    epoch_done = True
                    break
                stats = self._update(group)
                window.add(stats)
                self.state.step += 1
                self.state.tokens += stats["tokens"]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(window.postfix(), refresh=False)
                if self.state.step % cfg.log_every == 0:
                    self._log({"split": "train", **window.summary(), "epoch": self.sampler.epoch})
                    window = _Window()
                stopped = self._stop_reason(epoch_done=False)
                if self._validation_due() or stopped:
                    last_valid = self._validate_and_save()
                    stopped = stopped or self._early_stop()
            if epoch_done and not stopped:
                stopped = self._stop_reason(epoch_done=True)
                if stopped:
                    last_valid = self._validate_and_save()
        if bar is not None:
            bar.close()
        self._export_final()
        dist_utils.barrier(self.dist)
        result = TrainResult(
            steps=self.state.step,
            epochs=self.sampler.epoch,
            stopped_because=stopped,
            best=self.state.best,
            best_step=self.state.best_step,
            last_valid=last_valid,
            seconds=self._run_seconds(),
        )
        self._log({"split": "end", **result.__dict__})
        if self._tb is not None:
            self._tb.close()
        return result

    # --- one optimiser step -------------------------------------------------------------------

    def _update(self, group: list[list[int]]) -> dict[str, float]:
        """Forward/backward each micro-batch of `group`, then one optimiser step."""
        cfg = self.config
        model = self.train_model
        model.train()
        step = self.state.step + 1
        minutes = self._shared_minutes()
        lr = learning_rate(cfg, step, self.d_model, minutes)
        self.task.set_progress(step, minutes)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        loss_sum = nll_sum = 0.0
        tokens = 0
        t0 = time.perf_counter()
        for i, indices in enumerate(group):
            batch = self.task.collate(indices, self.device)
            # DDP: all-reduce gradients once per update, not after every micro-batch.
            # (FSDP has no no_sync: it reduce-scatters every micro-batch's gradients into the
            # shards, where skipping would keep whole unsharded gradients until the last one.)
            sync = i == len(group) - 1 or not self.dist.enabled
            with self._no_sync(model, not sync), self._autocast():
                out = self.task.loss(model, batch)
            loss = out.loss
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            loss_sum += float(out.loss.detach())
            nll_sum += float(out.nll)
            tokens += out.n_tokens
        # Normalise by the tokens of the whole update on all ranks, as if one process had run
        # the global batch: DDP averaged over ranks, so multiply back by world_size.
        total_tokens = dist_utils.all_reduce_sum(tokens, self.device, self.dist)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        scale = self.dist.world_size / max(total_tokens, 1.0)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        torch._foreach_mul_(grads, scale)
        if cfg.clip_norm > 0:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
            )
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            took = (time.perf_counter() - t0) / 60
            if self.fsdp is not None and self.config.ema_minutes is not None:
                # each rank averages its own shards: all with rank 0's decay (clocks differ)
                took = dist_utils.broadcast_float(took, self.device, self.dist)
            self.ema.update(self.model, took)
        loss_sum = dist_utils.all_reduce_sum(loss_sum, self.device, self.dist)
        nll_sum = dist_utils.all_reduce_sum(nll_sum, self.device, self.dist)
        return {
            "loss": loss_sum,
            "nll": nll_sum,
            "tokens": int(total_tokens),
            "lr": lr,
            "grad_norm": grad_norm,
            "seconds": time.perf_counter() - t0,
        }

    # --- validation, checkpoints, stopping ----------------------------------------------------

    def _validate_and_save(self) -> dict[str, float] | None:
        cfg = self.config
        metrics = None
        improved = False
        # Rank 0 validates alone, except under FSDP: there a forward gathers shards from every
        # rank, so all ranks validate together (see aiayn.train.fsdp).
        if self.dist.is_main or self.fsdp is not None:
            metrics = self._validate()
        model, ema = self._whole_models()  # under FSDP gathered to rank 0 (by all ranks)
        optimizer_state = self._optimizer_state()
        if self.dist.is_main:
            value = float(metrics[cfg.best_metric])
            best = self.state.best
            improved = best is None or (value > best if self._best_higher else value < best)
            if improved:
                self.state.best, self.state.best_step = value, self.state.step
                self.state.bad_validations = 0
            else:
                self.state.bad_validations += 1
            minutes = self._run_seconds() / 60
            self.state.history.append({"step": self.state.step, **metrics, "minutes": minutes})
            self._log(
                {"split": "valid", "step": self.state.step, **metrics, "best": improved,
                 "minutes": minutes}
            )  # fmt: skip
            self._save_checkpoint(metrics, model, ema, optimizer_state)
            if improved:
                ckpt.write_best(self.ckpt_dir, self.state.step, cfg.best_metric, value)
                # the model dir always holds the best
                self.task.export(ema if ema is not None else model, self.out_dir)
            keep = {self.state.best_step} if self.state.best_step is not None else set()
            ckpt.prune(self.ckpt_dir, cfg.keep_last, keep)
        dist_utils.barrier(self.dist)
        return metrics

    def _validate(self) -> dict[str, float]:
        cfg = self.config
        model = self._evaluated_model()
        self.model.eval()
        whole = contextlib.nullcontext()
        if self.fsdp is not None:
            from aiayn.train.fsdp import unsharded_root

            whole = unsharded_root(model)
        with torch.no_grad(), whole:
            metrics = self.task.validate(model)
        if cfg.best_metric not in metrics:
            raise ConfigError(
                f"best_metric '{cfg.best_metric}' is not among the validation metrics "
                f"{sorted(metrics)}; set best_metric to one of them"
            )
        return metrics

    def _whole_models(self) -> tuple[nn.Module | None, nn.Module | None]:
        """The model and its EMA (None without one) with whole weights, for rank 0 to save
        and export: themselves, or under FSDP rank 0's copies, gathered now (every rank must
        call it then; the other ranks get None)."""
        if self.fsdp is None:
            return self.model, self.ema.module if self.ema is not None else None
        model = self.fsdp.gather(self.model)
        ema = self.fsdp.gather(self.ema.module, ema=True) if self.ema is not None else None
        return model, ema

    def _optimizer_state(self) -> dict[str, Any] | None:
        """The optimiser's whole state on rank 0 (under FSDP gathered by every rank)."""
        if self.fsdp is None:
            return self.optimizer.state_dict() if self.dist.is_main else None
        return self.fsdp.gather_optimizer(self.model, self.optimizer)

    def _save_checkpoint(
        self,
        metrics: dict[str, float],
        model: nn.Module,
        ema: nn.Module | None,
        optimizer_state: dict[str, Any],
    ) -> None:
        state = {
            "optimizer": optimizer_state,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "sampler": self.sampler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "rng_python": list(random.getstate()[1]),
            "rng_python_version": random.getstate()[0],
            "trainer": {
                "step": self.state.step,
                "tokens": self.state.tokens,
                "best": self.state.best,
                "best_step": self.state.best_step,
                "bad_validations": self.state.bad_validations,
                "history": self.state.history,
                "seconds": self._run_seconds(),
            },
        }
        meta = {"epoch": self.sampler.epoch, "metrics": metrics}
        if self.ema is not None:
            state["ema_updates"] = self.ema.updates
        ckpt.save_checkpoint(self.ckpt_dir, self.state.step, model, state, meta, ema)

    def _resume(self) -> None:
        last = ckpt.check_run_dir(self.out_dir, resume=True)[-1]
        ema = self.ema.module if self.ema is not None else None
        if self.fsdp is None:
            state = ckpt.load_checkpoint(last, self.model, self.device)
            self.optimizer.load_state_dict(state["optimizer"])
            has_ema = ema is not None and ckpt.load_ema(last, ema, self.device)
        else:
            state, has_ema = self.fsdp.load(last, self.model, self.optimizer, ema)
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.sampler.load_state_dict(state["sampler"])
        # RNG states are CPU byte tensors, wherever map_location put the rest
        torch.set_rng_state(state["rng_torch"].cpu())
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["rng_cuda"]])
        random.setstate((state["rng_python_version"], tuple(state["rng_python"]), None))
        if self.ema is not None:
            if has_ema:
                self.ema.updates = state["ema_updates"]
            else:  # the run kept no EMA until now: start one from the resumed weights
                if self.dist.is_main:
                    log.warning("%s holds no EMA of the weights; starting one here", last.path)
                self.ema.restart(self.model)  # shard by shard under FSDP
        t = state["trainer"]
        self.state = TrainState(
            t["step"], t["tokens"], t["best"], t["best_step"], t["bad_validations"], t["history"],
            t.get("seconds", 0.0),  # checkpoints from before the clock was kept resume at 0
        )  # fmt: skip
        log.info("resumed from %s (step %d, epoch %d)", last.path, t["step"], self.sampler.epoch)

    def _evaluated_model(self) -> nn.Module:
        """What validation scores and export writes: the EMA of the weights when kept."""
        return self.ema.module if self.ema is not None else self.model

    def _new_ema(self, model: nn.Module) -> WeightEMA | None:
        cfg = self.config
        return WeightEMA(model, cfg.ema_decay, cfg.ema_minutes) if cfg.ema else None

    def _run_seconds(self) -> float:
        """Wall-clock seconds the run has trained, earlier sessions included (this rank's)."""
        return time.monotonic() - self._clock_start

    def _shared_minutes(self) -> float:
        """Minutes the run has trained by rank 0's clock, so that every rank steps with the
        same lr and loss (one scalar broadcast per update, under DDP only)."""
        return dist_utils.broadcast_float(self._run_seconds() / 60, self.device, self.dist)

    def _validation_due(self) -> bool:
        """After each step: on the step interval, or once the run's clock has passed the next
        multiple of valid_every_minutes (a fixed grid, so that time spent validating does not
        shift later validations; a resumed run continues the grid from its clock)."""
        cfg = self.config
        if cfg.valid_every is not None and self.state.step % cfg.valid_every == 0:
            return True
        if cfg.valid_every_minutes is None:
            return False
        # checkpoints from before minutes were kept hold none: count from the run's start
        last = self.state.history[-1].get("minutes", 0.0) if self.state.history else 0.0
        now = self._run_seconds() / 60
        due = now // cfg.valid_every_minutes > last // cfg.valid_every_minutes
        return dist_utils.broadcast_flag(due, self.device, self.dist)  # rank 0's clock decides

    def _stop_reason(self, epoch_done: bool) -> str:
        cfg = self.config
        reason = ""
        if cfg.max_steps is not None and self.state.step >= cfg.max_steps:
            reason = f"reached max_steps={cfg.max_steps}"
        elif epoch_done and cfg.max_epochs is not None and self.sampler.epoch >= cfg.max_epochs:
            reason = f"reached max_epochs={cfg.max_epochs}"
        elif cfg.max_minutes is not None and self._run_seconds() >= 60 * cfg.max_minutes:
            reason = f"reached max_minutes={cfg.max_minutes}"
        # every rank must stop at the same step: rank 0 decides (clocks differ)
        stop = dist_utils.broadcast_flag(bool(reason), self.device, self.dist)
        return (reason or "stopped by rank 0") if stop else ""

    def _early_stop(self) -> str:
        cfg = self.config
        stop = cfg.patience is not None and self.state.bad_validations >= cfg.patience
        stop = dist_utils.broadcast_flag(stop, self.device, self.dist)
        return f"no improvement in {cfg.patience} validations (early stopping)" if stop else ""

    def _export_final(self) -> None:
        k = self.config.average_last
        unexported = k <= 1 and self.state.best_step is None  # rank 0's state decides
        if self.fsdp is not None:  # then every rank takes part in gathering the weights
            unexported = dist_utils.broadcast_flag(unexported, self.device, self.dist)
        model, ema = self._whole_models() if unexported else (None, None)
        if not self.dist.is_main:
            return
        if k > 1:
            last = ckpt.list_checkpoints(self.ckpt_dir)[-k:]
            # config and tokenizer (the weights are replaced)
            template = self.model if self.fsdp is None else self.fsdp.model_copy
            self.task.export(template, self.out_dir)
            ckpt.average_checkpoints(last, self.out_dir / ckpt.WEIGHTS)
            self._log({"split": "export", "averaged_steps": [c.step for c in last]})
            if last[0].step < self.state.step / 2:  # e.g. a step interval tuned on a faster machine
                log.warning(
                    "the exported model averages checkpoints from step %d on, of a %d-step run: "
                    "weights from the first half dilute it. Checkpoint closer together "
                    "(valid_every, or valid_every_minutes for a time-boxed run) or average fewer "
                    "(`aiayn average --last K` rewrites the model from the kept checkpoints)",
                    last[0].step, self.state.step,
                )  # fmt: skip
        elif unexported:
            self.task.export(ema if ema is not None else model, self.out_dir)

    # --- plumbing -----------------------------------------------------------------------------

    def _prepare_out_dir(self, resume: bool) -> None:
        if self.dist.is_main:
            ckpt.check_run_dir(self.out_dir, resume)
            self.out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.out_dir / "train_config.json",
                json.dumps(self.config.to_dict(), indent=2) + "\n",
            )
        dist_utils.barrier(self.dist)

    def _wrap(self, model: nn.Module) -> nn.Module:
        wrapped = model
        if self.config.compile:
            # torch.compile is lazy: a missing C++ compiler or an unsupported op fails at the
            # first forward, not here. Dynamo then runs that frame eagerly (and warns) instead
            # of ending the run.
            torch._dynamo.config.suppress_errors = True
            try:
                wrapped = torch.compile(model)
            except Exception as err:  # a platform torch.compile refuses outright
                log.warning("torch.compile unavailable (%s); training eagerly", err)
        if self.dist.enabled and self.fsdp is None:  # FSDP: sharded in __init__
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            wrapped = DistributedDataParallel(wrapped, device_ids=ids)
        return wrapped

    def _check_fsdp(self) -> None:
        if not self.dist.enabled:
            raise ConfigError(
                "fsdp shards the model across processes: launch with torchrun --nproc_per_node "
                "N (N >= 2), or drop fsdp (--fsdp) to train in one process"
            )
        if self.precision == "fp16":  # the scaler would see only each rank's shards overflow
            raise ConfigError(
                "fsdp does not scale fp16 losses here (precision 'fp16', or 'auto' on a GPU "
                "without bf16); use precision bf16 or fp32 with fsdp"
            )

    def _autocast(self):
        precision = self.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @staticmethod
    def _no_sync(model: nn.Module, skip: bool):
        return model.no_sync() if skip and hasattr(model, "no_sync") else contextlib.nullcontext()

    def _progress_bar(self):
        if not self.dist.is_main or self.progress is False:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=self.config.max_steps,
            initial=self.state.step,
            unit="step",
            dynamic_ncols=True,
            disable=None if self.progress is None else not self.progress,  # None: TTY only
        )

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        line = json.dumps({"time": round(time.time(), 3), **record}, default=str)
        with open(self._metrics_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        log.info("%s", line)
        if self.config.tensorboard:
            self._tensorboard(record)

    def _tensorboard(self, record: dict[str, Any]) -> None:
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.warning("tensorboard is not installed (pip install tensorboard); skipping")
                self.config = self.config.replace(tensorboard=False)
                return
            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
        split, step = record.get("split"), record.get("step", self.state.step)
        for key, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and key != "step":
                self._tb.add_scalar(f"{split}/{key}", value, step)


class _Window:
    """Running sums of training statistics between two log lines."""

    def __init__(self) -> None:
        self.loss = self.nll = self.seconds = 0.0
        self.tokens = self.steps = 0
        self.lr = self.grad_norm = 0.0

    def add(self, stats: dict[str, float]) -> None:
        self.loss += stats["loss"]
        self.nll += stats["nll"]
        self.tokens += int(stats["tokens"])
        self.seconds += stats["seconds"]
        self.steps += 1
        self.lr, self.grad_norm = stats["lr"], stats["grad_norm"]

    def summary(self) -> dict[str, float]:
        per_token = self.nll / max(self.tokens, 1)
        return {
            "step_window": self.steps,
            "loss": self.loss / max(self.tokens, 1),
            "nll": per_token,
            "ppl": math.exp(min(per_token, 50.0)),
            "lr": self.lr,
            "grad_norm": self.grad_norm,
            "tokens_per_s": self.tokens / max(self.seconds, 1e-9),
        }

    def postfix(self) -> dict[str, str]:
        s = self.summary()
        return {
            "loss": f"{s['loss']:.3f}",
            "lr": f"{s['lr']:.2e}",
            "tok/s": f"{s['tokens_per_s']:.0f}",
        }


def _build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam (§5.3); AdamW with decay on weight matrices only when weight_decay > 0."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.weight_decay > 0:
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        cls = torch.optim.AdamW
    else:
        groups, cls = [{"params": params}], torch.optim.Adam
    kwargs = dict(lr=0.0, betas=cfg.adam_betas, eps=cfg.adam_eps)
    try:
        return cls(groups, fused=True, **kwargs)  # one kernel for all parameters
    except (RuntimeError, TypeError):
        return cls(groups, foreach=True, **kwargs)
