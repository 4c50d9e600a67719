"""The task-agnostic training loop: the paper's recipe plus what a real run needs.

A task (translation, language modelling, …) supplies the data and the loss; the `Trainer`
supplies everything else: Adam with a warm-up schedule, gradient accumulation, clipping,
mixed precision, data parallelism (DDP, or FSDP: `aiayn.train.fsdp`), validation, best/last-K
checkpoints written atomically, exact resumption, early stopping, time limits, metrics logs and
a progress bar.

Faults lose nothing: an update whose loss or gradient norm is not finite is skipped (and a run
of `max_bad_steps` such updates stops it with `DivergedError`); SIGTERM or SIGINT (a cluster
scheduler's notice, Ctrl-C) ends the current step, saves a checkpoint that `--resume` continues
exactly, and raises `Interrupted`; resuming a finished run changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from aiayn.devices import resolve_device
from aiayn.errors import AiaynError, ConfigError
from aiayn.io import atomic_write_text, disk_full_error, is_disk_full
from aiayn.models.serialization import stored_digest
from aiayn.train import checkpoint as ckpt
from aiayn.train import distributed as dist_utils
from aiayn.train.allocator import keep_freed_memory
from aiayn.train.config import TrainConfig
from aiayn.train.ema import WeightEMA
from aiayn.train.loss import LossOutput
from aiayn.train.precision import resolve_precision
from aiayn.train.schedules import learning_rate

log = logging.getLogger(__name__)


class DivergedError(AiaynError):
    """`max_bad_steps` updates in a row had a non-finite loss or gradient norm."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGTERM or SIGINT after saving a checkpoint of its current state,
    which `--resume` continues exactly. `exit_code` is the shell's 128 + the signal's number
    (143 for SIGTERM, 130 for SIGINT), which the CLI exits with. A KeyboardInterrupt, so that
    `except Exception` does not swallow it."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        if checkpoint is not None:
            saved = f"checkpoint {checkpoint} saved; continue the run with --resume"
        else:
            saved = "no checkpoint written (stopped at once); --resume continues the last one"
        super().__init__(f"{name}: training stopped at step {step}; {saved}")


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
    skipped: int = 0  # updates skipped for a non-finite loss or gradient norm


@dataclass
class TrainResult:
    steps: int
    epochs: int
    stopped_because: str
    best: float | None
    best_step: int | None
    last_valid: dict[str, float] | None
    seconds: float
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient norm


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
        self._signal: int | None = None  # the signal that asked this run to stop
        self._old_handlers: dict[int, Any] = {}
        self._saved_step: int | None = None  # the step of the newest checkpoint on disk

    # --- public -------------------------------------------------------------------------------

    def fit(self, resume: bool = False) -> TrainResult:
        """Train until a stopping condition; return a summary. `resume` continues the latest
        checkpoint in `out_dir` exactly where it stopped; resuming a run that has already
        met a stopping condition (of this config: raise max_steps to go on) trains nothing
        and writes nothing.

        Raises `Interrupted` after SIGTERM/SIGINT (once the current step's checkpoint is
        saved) and `DivergedError` after `max_bad_steps` non-finite updates in a row.
        """
        cfg = self.config
        if resume:
            self._resume()
            self._saved_step = self.state.step
            done = self._finished_reason()
            if done:
                return self._finished(done)
        self._prepare_out_dir(resume)
        if resume:
            self._export_lost_best()
        if not resume:
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
        bad_in_a_row = 0
        self._catch_signals()
        try:
            while not stopped:
                batches = iter(self.sampler)  # the rest of the current epoch
                epoch_done = False
                while not stopped:
                    group = [b for _, b in zip(range(cfg.update_freq), batches, strict=False)]
                    if not group:
                        epoch_done = True
                        break
                    stats = self._update(group)
                    if stats["skipped"]:
                        bad_in_a_row += 1
                        window.skipped += 1
                        self.state.skipped += 1
                        self._skipped(stats, bad_in_a_row)
                        continue  # the same step number again, with the next batches
                    bad_in_a_row = 0
                    window.add(stats)
                    self.state.step += 1
                    self.state.tokens += stats["tokens"]
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(window.postfix(), refresh=False)
                    if self.state.step % cfg.log_every == 0:
                        record = {"split": "train", **window.summary(), "epoch": self.sampler.epoch}
                        self._log(record)
                        window = _Window()
                    stopped = self._stop_reason(epoch_done=False)
                    if self._validation_due() or stopped:
                        last_valid = self._validate_and_save()
                        stopped = stopped or self._early_stop()
                    if not stopped and self._interrupted():
                        self._stop_on_signal()
                if epoch_done and not stopped:
                    stopped = self._stop_reason(epoch_done=True)
                    if stopped:
                        last_valid = self._validate_and_save()
        finally:
            self._restore_signals()
            if bar is not None:
                bar.close()
        self._export_final()
        dist_utils.barrier(self.dist)
        result = self._result(stopped, last_valid)
        self._log({"split": "end", **result.__dict__})
        if self._tb is not None:
            self._tb.close()
        return result

    def _result(self, stopped: str, last_valid: dict[str, float] | None) -> TrainResult:
        return TrainResult(
            steps=self.state.step,
            epochs=self.sampler.epoch,
            stopped_because=stopped,
            best=self.state.best,
            best_step=self.state.best_step,
            last_valid=last_valid,
            seconds=self._run_seconds(),
            skipped_steps=self.state.skipped,
        )

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
        stats = {"lr": lr, "skipped": False}
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
        # summed before the step: every rank then sees the same loss, and skips alike
        loss_sum = dist_utils.all_reduce_sum(loss_sum, self.device, self.dist)
        nll_sum = dist_utils.all_reduce_sum(nll_sum, self.device, self.dist)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        scale = self.dist.world_size / max(total_tokens, 1.0)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        torch._foreach_mul_(grads, scale)
        # The same on every rank too: DDP's gradients are all-reduced, FSDP's norm is global.
        if cfg.clip_norm > 0:
            grad_norm = float(
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
            )
        else:
            grad_norm = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))
        stats.update(loss=loss_sum, nll=nll_sum, tokens=int(total_tokens), grad_norm=grad_norm)
        # A non-finite loss is never a step. Non-finite gradients of a finite loss are the fp16
        # scaler's business (it skips that step itself and lowers the scale); without one they
        # would write NaN into the weights and Adam's moments for good.
        if not math.isfinite(loss_sum) or (self.scaler is None and not math.isfinite(grad_norm)):
            if self.scaler:
                self.scaler.update()  # unscale_ recorded the overflow: the scale still drops
            self.optimizer.zero_grad(set_to_none=True)
            stats.update(skipped=True, seconds=time.perf_counter() - t0)
            return stats
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
        stats["seconds"] = time.perf_counter() - t0
        return stats

    def _skipped(self, stats: dict[str, Any], in_a_row: int) -> None:
        """Report an update skipped for a non-finite loss or gradient norm; after
        `max_bad_steps` in a row, stop the run: it has diverged (or its data is broken)."""
        cfg = self.config
        step = self.state.step + 1
        what = f"loss {stats['loss']}, gradient norm {stats['grad_norm']}"
        if self.dist.is_main:
            log.warning(
                "update %d: non-finite %s (%s): skipped, no optimiser step (%d in a row; the "
                "run stops at %d)", step,
                "loss" if not math.isfinite(stats["loss"]) else "gradient norm", what,
                in_a_row, cfg.max_bad_steps,
            )  # fmt: skip
        if in_a_row < cfg.max_bad_steps:
            return
        self._log({"split": "diverged", "step": self.state.step, "skipped_in_a_row": in_a_row})
        last = self._saved_step
        since = f"; the last checkpoint is step {last}" if last is not None else ""
        raise DivergedError(
            f"training diverged: {in_a_row} updates in a row after step {self.state.step} had a "
            f"non-finite loss or gradient norm (the last: {what}), so none was applied "
            f"(max_bad_steps={cfg.max_bad_steps}){since}. Lower the learning rate (peak_lr or "
            "lr_scale) or lengthen warmup_steps, clip gradients (clip_norm), train in fp32 "
            "(precision fp32), or check the training data for broken examples; then --resume "
            "(with the new settings) or start afresh"
        )

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
        self._saved_step = self.state.step
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
        interrupted: str | None = None,
    ) -> ckpt.Checkpoint:
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
                "skipped": self.state.skipped,
            },
        }
        meta = {"epoch": self.sampler.epoch, "metrics": metrics}
        if interrupted:
            meta["interrupted"] = interrupted
        if self.ema is not None:
            state["ema_updates"] = self.ema.updates
        return ckpt.save_checkpoint(self.ckpt_dir, self.state.step, model, state, meta, ema)

    def _resume(self) -> None:
        last = ckpt.check_run_dir(self.out_dir, resume=True)[-1]
        ema = self.ema.module if self.ema is not None else None
        if self.fsdp is None:
            state = ckpt.load_checkpoint(last, self.model, self.device)
            groups = len(state["optimizer"]["param_groups"])
            if groups != len(self.optimizer.param_groups):
                # decay on weight matrices only is two groups (AdamW), none is one (Adam)
                raise ConfigError(
                    f"{last.path}: the run's optimizer kept {groups} parameter group(s), this "
                    f"one has {len(self.optimizer.param_groups)}: weight_decay was switched "
                    "on or off since; resume with the weight_decay the run was started with"
                )
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
            t.get("skipped", 0),
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

    def _finished_reason(self) -> str:
        """Why a resumed run has nothing left to do under this config ("" if it has): a
        stopping condition its checkpoint already meets. All ranks hold the same state."""
        cfg, state = self.config, self.state
        if cfg.max_steps is not None and state.step >= cfg.max_steps:
            return f"reached max_steps={cfg.max_steps}"
        if cfg.max_epochs is not None and self.sampler.epoch >= cfg.max_epochs:
            return f"reached max_epochs={cfg.max_epochs}"
        if cfg.max_minutes is not None and state.seconds >= 60 * cfg.max_minutes:
            return f"reached max_minutes={cfg.max_minutes}"
        if cfg.patience is not None and state.bad_validations >= cfg.patience:
            return f"stopped early: no improvement in {cfg.patience} validations"
        return ""

    def _finished(self, reason: str) -> TrainResult:
        """The result of resuming a finished run: nothing trained, nothing written. Only a run
        that stopped (at its last checkpoint) before its export finished, as after a kill,
        gets that export now."""
        last = self.state.history[-1] if self.state.history else {}
        last_valid = {k: v for k, v in last.items() if k not in ("step", "minutes")} or None
        self._clock_start = time.monotonic() - self.state.seconds
        ended = dist_utils.broadcast_flag(self._ended_cleanly(), self.device, self.dist)
        if ended:
            if self.dist.is_main:
                log.warning(
                    "%s: the run is finished (%s at step %d); nothing to do. Raise the limit to "
                    "train on", self.out_dir, reason, self.state.step,
                )  # fmt: skip
            return self._result(f"already {reason}", last_valid)
        if self.dist.is_main:
            log.warning("%s: the run stopped before its export; exporting now", self.out_dir)
        self._export_lost_best()
        self._export_final()
        dist_utils.barrier(self.dist)
        result = self._result(reason, last_valid)
        self._log({"split": "end", **result.__dict__})
        return result

    def _export_lost_best(self) -> None:
        """After resuming from the best checkpoint: export it if the model directory does not
        hold it, as when a kill came between saving that checkpoint and exporting it (the
        weights just loaded are that checkpoint's). The digests in the files' headers tell."""
        if self.config.average_last > 1 or self.state.best_step != self.state.step:
            return
        stale = False
        if self.dist.is_main:
            saved = ckpt.list_checkpoints(self.ckpt_dir)[-1].path
            source = saved / ckpt.EMA_WEIGHTS  # what the model directory holds, if kept
            if self.ema is None or not source.is_file():
                source = saved / ckpt.WEIGHTS
            exported = stored_digest(self.out_dir / ckpt.WEIGHTS)
            stale = exported is None or exported != stored_digest(source)
        if self.fsdp is not None:  # then every rank takes part in gathering the weights
            stale = dist_utils.broadcast_flag(stale, self.device, self.dist)
        if not stale:
            return
        model, ema = self._whole_models()
        if self.dist.is_main:
            log.warning("%s: exporting the best checkpoint (step %d) anew", self.out_dir,
                        self.state.step)  # fmt: skip
            ckpt.write_best(self.ckpt_dir, self.state.step, self.config.best_metric,
                            self.state.best)  # fmt: skip
            self.task.export(ema if ema is not None else model, self.out_dir)

    def _ended_cleanly(self) -> bool:
        """Whether the metrics log ends with this run's end record at the current step (rank
        0's view: other ranks answer False, and take rank 0's)."""
        if not self.dist.is_main or not self._metrics_file.is_file():
            return False
        with open(self._metrics_file, "rb") as f:
            f.seek(0, 2)
            f.seek(max(f.tell() - 65536, 0))
            lines = f.read().decode("utf-8", "replace").splitlines()
        try:
            last = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:  # a line cut short by a crash
            return False
        return last.get("split") == "end" and last.get("steps") == self.state.step

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
            regular = [c for c in ckpt.list_checkpoints(self.ckpt_dir) if not c.interrupted]
            last = regular[-k:]
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
            if not resume:  # a fresh run's log starts afresh (--force into an old directory)
                self._metrics_file.unlink(missing_ok=True)
            atomic_write_text(
                self.out_dir / "train_config.json",
                json.dumps(self.config.to_dict(), indent=2) + "\n",
            )
        dist_utils.barrier(self.dist)

    # --- signals: stop at the end of a step, with a checkpoint ------------------------------

    def _catch_signals(self) -> None:
        """From here to `_restore_signals`, SIGTERM and SIGINT ask the run to stop after the
        current step (Python lets only the main thread install handlers: elsewhere, as in a
        notebook's worker thread, they keep their defaults)."""
        self._signal = None
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            old = signal.signal(signum, self._on_signal)
            self._old_handlers[signum] = signal.SIG_DFL if old is None else old

    def _restore_signals(self) -> None:
        for signum, old in self._old_handlers.items():
            signal.signal(signum, old)
        self._old_handlers = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._signal is not None:  # asked twice: stop now (any save in progress is atomic)
            self._restore_signals()
            raise Interrupted(signum, self.state.step, None)
        self._signal = signum
        log.warning(
            "%s: stopping after this step, with a checkpoint (%s again stops at once)", name, name
        )

    def _interrupted(self) -> bool:
        """Whether any rank got a signal: all ranks stop after the same step."""
        flag = self._signal is not None
        if self.dist.enabled:
            flag = dist_utils.all_reduce_sum(float(flag), self.device, self.dist) > 0
        return flag

    def _stop_on_signal(self) -> None:
        """Save the current state (unless this step's checkpoint is on disk) and raise
        `Interrupted`. No validation: the checkpoint is marked as written on a signal, so
        that pruning and averaging pass over it, and resumes as a regular one does."""
        signum = self._signal if self._signal is not None else signal.SIGTERM  # another rank's
        name = signal.Signals(signum).name
        path = self.ckpt_dir / f"step_{self.state.step:08d}"
        if self._saved_step != self.state.step:
            model, ema = self._whole_models()  # under FSDP gathered by every rank
            optimizer_state = self._optimizer_state()
            if self.dist.is_main:
                path = self._save_checkpoint({}, model, ema, optimizer_state, name).path
                keep = {self.state.best_step} if self.state.best_step is not None else set()
                ckpt.prune(self.ckpt_dir, self.config.keep_last, keep)
            self._saved_step = self.state.step
        self._log({"split": "interrupt", "step": self.state.step, "signal": name,
                   "checkpoint": str(path)})  # fmt: skip
        dist_utils.barrier(self.dist)
        raise Interrupted(signum, self.state.step, path)

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
        try:
            with open(self._metrics_file, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as err:
            if is_disk_full(err):
                raise disk_full_error(
                    self._metrics_file, "a log line",
                    "free some space, then continue the run with --resume",
                ) from err  # fmt: skip
            raise
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
        self.skipped = 0  # updates skipped (non-finite loss or gradient norm)

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
            "skipped_steps": self.skipped,
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
