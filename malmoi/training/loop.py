"""The one training loop: every malmoi model trains through ``fit``.

``fit`` owns the parts every task shares: ``accelerate`` (device, DDP across processes or
machines, bf16 autocast), AdamW without decay on biases and norms, linear warmup then linear
decay, gradient clipping and accumulation, evaluation every N steps or each epoch, early
stopping, a time budget, progress and ``metrics.jsonl``, ``curve.png``, and checkpoints that
make ``resume`` continue exactly where a run stopped (even after ``kill -9``).

Run directory written by the main process only::

    OUT/metrics.jsonl               one JSON object per log / eval event
    OUT/curve.png                   training loss and the validation metric against the step
    OUT/checkpoints/last/           model.safetensors, optimizer.pt, scheduler.pt, state.json
    OUT/checkpoints/best/           model.safetensors, state.json (best validation metric)
    OUT/...                         whatever ``export(model, OUT)`` writes for the best model

Each checkpoint folder is written to a temporary sibling and renamed into place, so ``best``
and ``last`` are always complete. ``best`` is written before ``last`` so that ``last`` never
records a best that is not on disk yet.
"""
from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from malmoi.errors import MalmoiError
from malmoi.files import atomic_write_bytes
from malmoi.training.args import TrainArgs
from malmoi.training.checkpoints import MODEL_FILE, load_weights, read_checkpoint_state, save_checkpoint
from malmoi.training.optim import WarmupLinearDecay, adamw, clip_grad_norm
from malmoi.training.progress import Reporter, fmt_eta
from malmoi.training.rng import isolated_rng, rng_state, seed_all, set_rng_state

CHECKPOINTS = "checkpoints"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "curve.png"
STOPPED_BY = ("epochs", "max_steps", "time", "early_stopping")
CURVE_EVERY_S = 30.0  # redraw curve.png at most this often during training (always at the end)


@dataclass
class FitResult:
    """What a call to ``fit`` achieved."""

    stopped_by: str
    """Why training ended: "epochs", "max_steps", "time" or "early_stopping"."""
    steps: int
    """Optimizer steps taken in total (including those before a resume)."""
    epochs: float
    """Epochs completed in total (fractional)."""
    best_metric: float | None
    """Best validation value of the monitored metric (None without validation data)."""
    best_step: int | None
    """Step at which ``best_metric`` was reached."""
    metrics: dict[str, float]
    """The last evaluation's metrics."""
    samples_per_s: float
    """Training examples per second in this invocation (all processes together, evaluation excluded)."""
    train_seconds: float
    """Seconds spent in training steps in this invocation."""
    out_dir: Path
    """The run directory."""


@dataclass
class LoopState:
    """Where a run is; saved in ``state.json`` and restored by ``resume``."""

    global_step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    """Batches of ``epoch`` this process has consumed (always at an optimizer-step boundary)."""
    best_metric: float | None = None
    best_step: int | None = None
    bad_evals: int = 0
    """Evaluations since the last improvement (early stopping)."""
    last_eval_step: int = -1
    last_metrics: dict = field(default_factory=dict)


def mean_loss(model: nn.Module, loader) -> dict[str, float]:
    """The default ``evaluate``: the model's loss averaged over examples."""
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(_device_of(model)) for k, v in batch.items()}
        n = _batch_len(batch)
        total += float(model(**batch).loss) * n
        count += n
    return {"loss": total / max(1, count)}


# --------------------------------------------------------------------------- helpers


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batch_len(batch: Mapping[str, torch.Tensor]) -> int:
    return len(next(iter(batch.values())))


def _accelerator(args: TrainArgs):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    # a process may call fit several times with different precision; keep the process group
    AcceleratorState._reset_state()
    GradientState._reset_state()
    # without cpu=True accelerate ignores torchrun's environment on a machine without GPUs
    # and every process trains alone
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision="bf16" if args.bf16 else "no")


def _set_threads(args: TrainArgs) -> None:
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
        return
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if local > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // local))


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop events logged after the checkpoint (they will be produced again)."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
    atomic_write_bytes(path, "".join(f"{line}\n" for line in keep).encode("utf-8"))


# --------------------------------------------------------------------------- the loop


def fit(
    model: nn.Module,
    train_dataset,
    valid_dataset=None,
    *,
    args: TrainArgs,
    out: str | os.PathLike,
    collate: Callable | None = None,
    evaluate: Callable[[nn.Module, Any], dict[str, float]] | None = None,
    export: Callable[[nn.Module, Path], None] | None = None,
    metric: str = "loss",
    maximize: bool = False,
    resume: bool = False,
    lengths=None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_dataset`` into the run directory ``out``; see the module doc for
    what is written where.

    ``model(**batch)`` must return an object with ``.loss``; ``collate`` turns a list of dataset
    items into that dict of tensors (default ``PadCollator()``). ``evaluate(model, loader)`` runs
    on the main process with the model in eval mode under ``no_grad`` and returns metrics that
    include ``metric`` (default: mean loss); the loader yields batches sorted by length, so
    compute metrics from batch contents. ``lengths`` (one int per training example) turns on
    length-bucketed batches. ``on_eval(step, metrics)`` runs on the main process after each
    evaluation. At the end the best weights (or the last ones without validation data) are
    loaded into ``model`` and ``export(model, out)`` writes the deployable model.
    """
    from malmoi.data.batching import PadCollator

    if len(train_dataset) == 0:
        raise MalmoiError("E113", "the training data is empty")
    if lengths is not None and len(lengths) != len(train_dataset):
        raise MalmoiError("E115", f"{len(lengths)} lengths for {len(train_dataset)} training examples")
    threads = torch.get_num_threads()
    try:
        loop = _Loop(model, train_dataset, valid_dataset, args, Path(out), collate or PadCollator(),
                     evaluate or mean_loss, export, metric, maximize, resume, lengths, on_eval)
        return loop.run()
    finally:
        torch.set_num_threads(threads)  # fit's thread choice must not outlive it


class _Loop:
    """One call of ``fit``. Everything the loop keeps is set up in ``__init__``; the methods below
    it only advance that state."""

    def __init__(self, model, train_dataset, valid_dataset, args, out, collate, evaluate, export,
                 metric, maximize, resume, lengths, on_eval):
        from torch.utils.data import DataLoader

        from malmoi.data.batching import BucketSampler

        self.args, self.out = args, out
        self.train_dataset, self.valid_dataset, self.collate = train_dataset, valid_dataset, collate
        self.evaluate_fn, self.export_fn, self.on_eval = evaluate, export, on_eval
        self.metric, self.maximize, self.resume = metric, maximize, resume
        self.ckpt = out / CHECKPOINTS
        self.metrics_path = out / METRICS_FILE
        self.acc = acc = _accelerator(args)
        _set_threads(args)
        self._check_out()
        if acc.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        seed_all(args.seed + acc.process_index)
        self.sampler = BucketSampler(lengths, args.batch_size, shuffle=True, seed=args.seed,
                                     size=len(train_dataset), num_replicas=acc.num_processes,
                                     rank=acc.process_index)
        # a private generator: DataLoader draws a seed from it per epoch, which would otherwise
        # come from the global generator and shift dropout after a resume
        self.loader = DataLoader(train_dataset, batch_sampler=self.sampler, collate_fn=collate,
                                 num_workers=args.num_workers, generator=torch.Generator())
        self.steps_per_epoch = -(-self.sampler.num_batches // args.grad_accum)
        self.planned_steps = args.max_steps or args.epochs * self.steps_per_epoch
        self.schedule = WarmupLinearDecay(args.warmup, self.planned_steps)
        self.model = acc.prepare_model(model)
        self.raw = acc.unwrap_model(self.model)
        self.optimizer = adamw(self.raw, args)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.state, self.rng_to_restore = self._restore() if resume else (LoopState(), None)
        self.reporter = Reporter(args.progress and acc.is_main_process, self.planned_steps, self.state.global_step)
        self.t0 = time.perf_counter()
        self.eval_seconds = self.eval_total = 0.0
        self.last_curve = -math.inf

    def _check_out(self) -> None:
        last = self.ckpt / "last"
        if self.resume and not (last / "state.json").is_file():
            raise MalmoiError("E302", f"nothing to resume in {self.out}: no {CHECKPOINTS}/last")
        if not self.resume and self.ckpt.exists() and any(self.ckpt.iterdir()):
            raise MalmoiError("E301", f"{self.out} already holds checkpoints; pass --resume to continue it "
                                      "or choose another --out")

    def _restore(self) -> tuple[LoopState, dict]:
        """Weights, optimizer and schedule from ``checkpoints/last``; returns the loop state and this
        process's generator state to continue from."""
        last = self.ckpt / "last"
        saved = read_checkpoint_state(last)
        acc = self.acc
        for key, now in (("world_size", acc.num_processes), ("batch_size", self.args.batch_size),
                         ("grad_accum", self.args.grad_accum), ("train_size", len(self.train_dataset))):
            if saved.get(key) != now:
                raise MalmoiError("E306", f"cannot resume {self.out} with {key}={now}: it was trained with "
                                          f"{key}={saved.get(key)}")
        load_weights(last, self.raw)
        # load_state_dict moves the state onto the parameters' device
        self.optimizer.load_state_dict(torch.load(last / "optimizer.pt", weights_only=True, map_location="cpu"))
        self.scheduler.load_state_dict(torch.load(last / "scheduler.pt", weights_only=True))
        if not (self.args.time_budget and self.args.decay_to_budget):
            self.schedule.total = self.planned_steps  # more epochs on resume stretch the decay
        self.sampler.seed = saved["seed"]  # the data order continues even if --seed changed
        state = LoopState(**saved["loop"])
        if acc.is_main_process:
            _truncate_metrics(self.metrics_path, state.global_step)
        return state, saved["rng"][acc.process_index]

    # -- events

    def _log(self, record: dict) -> None:
        if self.acc.is_main_process:
            _append_jsonl(self.metrics_path, record)

    def _better(self, value: float) -> bool:
        best = self.state.best_metric
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value > best if self.maximize else value < best

    def _on_main(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the main process only and hand its result to every process; if it fails,
        every process raises (instead of the others waiting for it forever)."""
        result, error = None, None
        if self.acc.is_main_process:
            try:
                result = fn()
            except BaseException as e:  # noqa: BLE001 - re-raised below, after telling the others
                error = e
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            note = None if error is None else f"{type(error).__name__}: {error}"
            result, note = broadcast_object_list([result if error is None else None, note])
            if note is not None and error is None:
                raise RuntimeError(f"the main process failed: {note}")
        if error is not None:
            raise error
        return result

    def _evaluate(self) -> dict[str, float]:
        from torch.utils.data import DataLoader

        from malmoi.data.batching import BucketSampler

        acc, args, data = self.acc, self.args, self.valid_dataset
        sampler = BucketSampler(getattr(data, "lengths", None), args.eval_batch_size or args.batch_size,
                                shuffle=False, size=len(data))
        loader = DataLoader(data, batch_sampler=sampler, collate_fn=self.collate, generator=torch.Generator())
        was_training = self.raw.training
        self.raw.eval()
        try:
            with isolated_rng(args.seed), torch.no_grad(), acc.autocast():
                metrics = {k: float(v) for k, v in self.evaluate_fn(self.raw, loader).items()}
        finally:
            self.raw.train(was_training)
        if self.metric not in metrics:
            raise MalmoiError("E204", f"evaluate returned {sorted(metrics)}, without the monitored "
                                      f"metric {self.metric!r}")
        return metrics

    def _checkpoint_state(self, rng: list) -> dict:
        return {"loop": asdict(self.state), "rng": rng, "world_size": self.acc.num_processes,
                "batch_size": self.args.batch_size, "grad_accum": self.args.grad_accum,
                "train_size": len(self.train_dataset),
                "seed": self.args.seed, "args": asdict(self.args), "metric": self.metric,
                "maximize": self.maximize}

    def _eval_and_save(self, early_stop: bool) -> str | None:
        """Evaluate (with validation data), write best (if improved) then last; maybe stop early."""
        started = time.perf_counter()
        acc, state = self.acc, self.state
        improved = False
        if self.valid_dataset is not None:
            metrics = self._on_main(self._evaluate)
            value = metrics[self.metric]
            improved = self._better(value)
            if improved:
                state.best_metric, state.best_step, state.bad_evals = value, state.global_step, 0
            else:
                state.bad_evals += 1
            state.last_metrics = metrics
            self._log({"event": "eval", "step": state.global_step, "epoch": self._epochs_done(),
                       **metrics, "best": state.best_metric, "elapsed": round(time.perf_counter() - self.t0, 3)})
            self.reporter.message(f"step {state.global_step} eval " + " ".join(
                f"{k} {v:.4f}" for k, v in metrics.items()) + (" (best)" if improved else ""))
        state.last_eval_step = state.global_step
        rng = rng_state()
        if acc.num_processes > 1:
            from accelerate.utils import gather_object

            rng = gather_object([rng])
        else:
            rng = [rng]
        self._on_main(lambda: self._save(rng, improved))
        self.eval_seconds = time.perf_counter() - started
        self.eval_total += self.eval_seconds
        if early_stop and self.args.patience and state.bad_evals >= self.args.patience:
            return "early_stopping"
        return None

    def _save(self, rng: list, improved: bool) -> None:
        state = self._checkpoint_state(rng)
        if improved:
            save_checkpoint(self.ckpt / "best", self.raw, {k: v for k, v in state.items() if k != "rng"})
        save_checkpoint(self.ckpt / "last", self.raw, state, self.optimizer, self.scheduler)
        if time.perf_counter() - self.last_curve >= CURVE_EVERY_S:
            self._draw_curve()
        if self.on_eval is not None and self.valid_dataset is not None:
            self.on_eval(self.state.global_step, self.state.last_metrics)  # after the save: a failing hook loses nothing

    def _draw_curve(self) -> None:
        from malmoi.training.plots import plot_curve

        plot_curve(self.metrics_path, self.out / CURVE_FILE, self.metric)
        self.last_curve = time.perf_counter()

    def _epochs_done(self) -> float:
        n = self.sampler.num_batches
        return round(self.state.epoch + self.state.batch_in_epoch / max(1, n), 4)

    # -- control

    def _control(self, steps_here: int) -> tuple[bool, int, bool]:
        """Decide on the main process whether the time budget is spent, the schedule length, and
        whether evaluations have had their share of the time (``eval_share``); every process follows
        the same decision (diverging ones would deadlock DDP)."""
        args = self.args
        stop, total, thrift = False, self.schedule.total, False
        if args.time_budget and self.acc.is_main_process:
            elapsed = time.perf_counter() - self.t0
            per_step = elapsed / max(1, steps_here)
            reserve = self.eval_seconds  # the closing evaluation and save must fit in the budget too
            stop = elapsed + per_step + reserve >= args.time_budget
            thrift = self.eval_total > args.eval_share * elapsed if args.eval_share else False
            if args.decay_to_budget and steps_here >= 3:
                left = max(0.0, args.time_budget - elapsed - reserve)
                total = min(self.planned_steps, max(self.state.global_step + 1,
                                                    self.state.global_step + int(left / per_step)))
        if args.time_budget and self.acc.num_processes > 1:
            flags = torch.tensor([int(stop), total, int(thrift)], dtype=torch.long, device=self.acc.device)
            torch.distributed.broadcast(flags, src=0)
            stop, total, thrift = bool(flags[0]), int(flags[1]), bool(flags[2])
        return stop, total, thrift

    def _step(self, batches) -> tuple[torch.Tensor, int, int]:
        """One optimizer step over up to ``grad_accum`` micro-batches; returns (loss sum, micro-batches, examples)."""
        acc, args = self.acc, self.args
        group = min(args.grad_accum, self.sampler.num_batches - self.state.batch_in_epoch)
        loss_sum = torch.zeros((), device=acc.device)
        examples = 0
        for j in range(group):
            batch = {k: v.to(acc.device, non_blocking=True) for k, v in next(batches).items()}
            examples += _batch_len(batch)
            # only the last micro-batch all-reduces gradients across processes
            with acc.no_sync(self.model) if j < group - 1 else nullcontext():
                loss = self.model(**batch).loss
                if loss is None:
                    raise MalmoiError("E460", f"the model returned no loss for a batch of {sorted(batch)}; "
                                              "training batches need labels")
                acc.backward(loss / group)
            loss_sum += loss.detach().float()
        if args.grad_clip:
            clip_grad_norm(self.raw.parameters(), args.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, group, examples

    def run(self) -> FitResult:
        self._log({"event": "start" if not self.resume else "resume", "step": self.state.global_step,
                   "world_size": self.acc.num_processes, "planned_steps": self.planned_steps,
                   "steps_per_epoch": self.steps_per_epoch, "args": asdict(self.args)})
        if self.rng_to_restore is not None:
            set_rng_state(self.rng_to_restore)
        try:
            stopped_by, samples, steps_here = self._train()
        finally:
            self.reporter.close()
        return self._finish(stopped_by, samples, steps_here)

    def _train(self) -> tuple[str, int, int]:
        args, state, acc = self.args, self.state, self.acc
        self.model.train()
        samples = steps_here = 0
        window_loss = torch.zeros((), device=acc.device)  # summed on the device: no sync per step
        window_batches, window_samples, window_t = 0, 0, time.perf_counter()
        n = self.sampler.num_batches
        while True:
            if args.max_steps and state.global_step >= args.max_steps:
                return "max_steps", samples, steps_here
            if not args.max_steps and state.epoch >= args.epochs:
                return "epochs", samples, steps_here
            self.sampler.set_epoch(state.epoch)
            self.sampler.skip(state.batch_in_epoch)
            batches = iter(self.loader)
            while state.batch_in_epoch < n:
                stop, total, thrift = self._control(steps_here)
                self.schedule.total = total
                loss_sum, group, examples = self._step(batches)
                state.global_step += 1
                steps_here += 1
                state.batch_in_epoch += group
                samples += examples
                window_loss += loss_sum
                window_batches += group
                window_samples += examples
                end_of_epoch = state.batch_in_epoch >= n
                if end_of_epoch:
                    state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                log_now = state.global_step % args.log_every == 0
                if log_now or self.reporter.bar is not None:
                    now = time.perf_counter()
                    sps = window_samples * acc.num_processes / max(1e-9, now - window_t)
                    loss = float(window_loss) / max(1, window_batches)
                    if not math.isfinite(loss):
                        raise MalmoiError("E461", f"the training loss became {loss} at step {state.global_step}; "
                                                  "lower --lr or check the data")
                    info = f"loss {loss:.4f} · {sps:.0f} samples/s · eta {fmt_eta(self._eta(steps_here))}"
                    self.reporter.update(state.global_step, self.schedule.total, info, log_now)
                    if log_now:
                        self._log({"event": "train", "step": state.global_step, "epoch": self._epochs_done(),
                                   "loss": round(loss, 6), "lr": self.scheduler.get_last_lr()[0],
                                   "samples_per_s": round(sps, 2),
                                   "elapsed": round(now - self.t0, 3)})
                        window_loss = torch.zeros((), device=acc.device)
                        window_batches, window_samples, window_t = 0, 0, now
                stopped = None
                if args.max_steps and state.global_step >= args.max_steps:
                    stopped = "max_steps"
                elif stop:
                    stopped = "time"
                due = (args.eval_every and state.global_step % args.eval_every == 0) or (
                    end_of_epoch and not args.eval_every and not thrift)
                if due or stopped:
                    early = self._eval_and_save(early_stop=True)
                    stopped = stopped or early
                if stopped:
                    return stopped, samples, steps_here
                if end_of_epoch:
                    break

    def _eta(self, steps_here: int) -> float:
        elapsed = time.perf_counter() - self.t0
        left = (self.schedule.total - self.state.global_step) * elapsed / max(1, steps_here)
        if self.args.time_budget:
            left = min(left, self.args.time_budget - elapsed)
        return left

    def _finish(self, stopped_by: str, samples: int, steps_here: int) -> FitResult:
        acc, state = self.acc, self.state
        if state.last_eval_step != state.global_step:
            self._eval_and_save(early_stop=False)
        train_seconds = max(1e-9, time.perf_counter() - self.t0 - self.eval_total)
        sps = samples * acc.num_processes / train_seconds
        best = self.ckpt / "best"
        if state.best_step is not None and (best / MODEL_FILE).is_file():
            load_weights(best, self.raw)
        self.raw = acc.unwrap_model(self.model, keep_fp32_wrapper=False)

        def close() -> None:
            self._log({"event": "end", "step": state.global_step, "stopped_by": stopped_by,
                       "best": state.best_metric, "best_step": state.best_step,
                       "samples_per_s": round(sps, 2), "train_seconds": round(train_seconds, 3)})
            self._draw_curve()
            if self.export_fn is not None:
                self.export_fn(self.raw, self.out)

        self._on_main(close)
        return FitResult(stopped_by=stopped_by, steps=state.global_step, epochs=self._epochs_done(),
                         best_metric=state.best_metric, best_step=state.best_step,
                         metrics=dict(state.last_metrics), samples_per_s=sps, train_seconds=train_seconds,
                         out_dir=self.out)
