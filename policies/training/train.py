"""The training loop of ``rcs train``, readable top to bottom.

    dataset (LeRobotDataset) --load_demos--> in-memory tensors + normalization stats
    policy config (from the dataset's features) -> RcsDiffusionPolicy + lerobot pre/post-processors
    for step in steps: sample a batch -> preprocessor (normalize) -> policy.forward (loss) -> AdamW step
    every save_every steps and at the end: a checkpoint in lerobot's layout

Output folder::

    OUT/train_config.json            the TrainConfig of the run
    OUT/loss.csv, OUT/loss.png       step, loss, learning rate, elapsed seconds; the curve
    OUT/checkpoints/<step>/pretrained_model/   config.json, model.safetensors, policy_{pre,post}processor*,
                                               rcs_policy.json (manifest for ``rcs serve``)
    OUT/checkpoints/<step>/training_state/     optimizer, scheduler, RNG state, step (safetensors + json)
    OUT/checkpoints/last -> <step>

``resume=True`` continues from ``OUT/checkpoints/last`` (weights, optimizer, scheduler, RNG, step) and refuses a
dataset whose features differ from the checkpoint's.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from policies.rcs_diffusion.configuration_rcs_diffusion import RcsDiffusionConfig
from policies.rcs_diffusion.modeling_rcs_diffusion import RcsDiffusionPolicy
from policies.rcs_diffusion.processor_rcs_diffusion import make_rcs_diffusion_pre_post_processors
from policies.training.data import DatasetFeatureError, DemoData, load_demos
from policies.training.plot import loss_curve_png
from rcs.errors import ConfigError

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LAST = "last"
PRETRAINED = "pretrained_model"
TRAINING_STATE = "training_state"


@dataclass
class TrainConfig:
    """One training run.

    Attributes:
        dataset: LeRobotDataset root folder.
        output: run folder (see the module docstring).
        steps: total optimizer steps (a resumed run continues up to this number).
        batch_size: samples per step.
        save_every: steps between checkpoints (and one at the end).
        log_every: steps between loss-log rows.
        seed: torch seed (sampling, noise, init).
        threads: torch intra-op threads (None: torch's default).
        max_minutes: stop (with a checkpoint) after this much wall time, whatever ``steps`` says.
        stop_at: stop (with a checkpoint) at this step, to continue later with ``resume`` (training in
            segments); the learning-rate schedule still spans ``steps``.
        resume: continue from ``output/checkpoints/last``.
        ignore_features: dataset observation features to skip.
        policy: overrides of :class:`RcsDiffusionConfig` fields (e.g. ``{"use_language": True}``).
        repo_id: dataset repo id (only a label for local datasets).
    """

    dataset: str
    output: str
    steps: int = 20_000
    batch_size: int = 64
    save_every: int = 2_000
    log_every: int = 50
    seed: int = 0
    threads: int | None = None
    max_minutes: float | None = None
    stop_at: int | None = None
    resume: bool = False
    ignore_features: list[str] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    repo_id: str | None = None


@dataclass
class TrainResult:
    """What a run produced: final step, last checkpoint folder, last logged loss, wall time (s)."""

    step: int
    checkpoint: Path
    loss: float
    wall_s: float
    stopped_early: bool


def policy_config_for(data: DemoData, overrides: dict[str, Any]) -> RcsDiffusionConfig:
    """The policy config of a dataset: its features, action names and rate, plus user overrides."""
    return RcsDiffusionConfig(
        **overrides,
        device="cpu",
        input_features=data.input_features,
        output_features=data.output_features,
        action_names=data.action_names,
        feature_names=data.feature_names,
        fps=data.fps,
    )


def check_same_features(config: RcsDiffusionConfig, data: DemoData) -> None:
    """Resuming on a dataset with other features than the checkpoint's is an error naming the difference."""
    for kind, ours, theirs in (
        ("input", config.input_features, data.input_features),
        ("output", config.output_features, data.output_features),
    ):
        for key in sorted(set(ours) | set(theirs)):
            a, b = ours.get(key), theirs.get(key)
            if a is None or b is None or tuple(a.shape) != tuple(b.shape) or a.type != b.type:
                raise DatasetFeatureError(f"{kind} feature {key!r}: checkpoint has {a}, dataset has {b}")
    if list(config.action_names) != list(data.action_names):
        raise DatasetFeatureError(f"action names: checkpoint {config.action_names}, dataset {data.action_names}")


def serving_manifest(config: RcsDiffusionConfig, checkpoint_id: str) -> dict[str, Any]:
    """``rcs_policy.json`` for ``rcs serve`` (policies/lerobot_adapter.py): rate, column names, units, text input."""
    from rcs.serving.manifest import manifest_fields

    return manifest_fields(
        config.action_names,
        config.feature_names,
        config.fps,
        policy_type=config.type,
        checkpoint_id=checkpoint_id,
        language=config.use_language,
    )


def save_checkpoint(
    run: Path,
    step: int,
    policy: RcsDiffusionPolicy,
    preprocessor: Any,
    postprocessor: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> Path:
    """Write ``run/checkpoints/<step>`` (into a temporary folder first, then renamed) and point ``last`` at it."""
    from lerobot.common.train_utils import save_training_state, update_last_checkpoint

    root = run / CHECKPOINTS
    final = root / f"{step:06d}"
    tmp = root / f".{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pretrained = tmp / PRETRAINED
    policy.save_pretrained(pretrained)
    preprocessor.save_pretrained(pretrained)
    postprocessor.save_pretrained(pretrained)
    (pretrained / "rcs_policy.json").write_text(
        json.dumps(serving_manifest(policy.config, f"{run.name}/{step:06d}"), indent=2)
    )
    save_training_state(tmp, step, optimizer, scheduler)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    update_last_checkpoint(final)
    return final


def _progress(total: int, initial: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=1.0)


def check_config(cfg: TrainConfig) -> None:
    """Raise :class:`ConfigError` naming the first field outside its limit (before any file is written).

    Why here as well as in ``rcs train``'s parser: steps <= 0 divides by zero in lerobot's scheduler, or returns a
    NaN loss and a checkpoint that was never written; a negative max_minutes stops after one step.
    """
    for name, minimum in (("steps", 1), ("batch_size", 1), ("save_every", 1), ("log_every", 1)):
        value = getattr(cfg, name)
        if not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name}={value!r}: must be an integer >= {minimum}")
    for name in ("threads", "stop_at"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name}={value!r}: must be None or an integer >= 1")
    if cfg.max_minutes is not None and not (0 < cfg.max_minutes < float("inf")):
        raise ConfigError(f"max_minutes={cfg.max_minutes!r}: must be None or a finite duration > 0 (minutes)")


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    """Run (or resume) training; returns the final step and checkpoint. See the module docstring."""
    check_config(cfg)
    run = Path(cfg.output)
    last = run / CHECKPOINTS / LAST
    if cfg.resume and not last.exists():
        raise FileNotFoundError(f"resume: no checkpoint at {last}")
    if not cfg.resume and (run / CHECKPOINTS).exists():
        raise FileExistsError(f"{run / CHECKPOINTS} exists: resume it (--resume) or choose a new --output")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t_start = time.monotonic()

    # 1. policy config and data
    if cfg.resume:
        config = RcsDiffusionConfig.from_pretrained(last / PRETRAINED)
        data = load_demos(cfg.dataset, config, cfg.repo_id, tuple(cfg.ignore_features))
        check_same_features(config, data)
    else:
        probe = RcsDiffusionConfig(**cfg.policy, device="cpu")
        data = load_demos(cfg.dataset, probe, cfg.repo_id, tuple(cfg.ignore_features))
        config = policy_config_for(data, cfg.policy)
    log.info(
        "dataset %s: %d frames, %d episodes, inputs %s, action %s (%s)",
        cfg.dataset,
        len(data),
        len(torch.unique(data.episode_index)),
        sorted(config.input_features),
        config.action_names,
        config.action_target,
    )

    # 2. policy, processors, optimizer
    if cfg.resume:
        policy = RcsDiffusionPolicy.from_pretrained(last / PRETRAINED, config=config)
    else:
        policy = RcsDiffusionPolicy(config)
    preprocessor, postprocessor = make_rcs_diffusion_pre_post_processors(config, data.stats)
    optimizer = config.get_optimizer_preset().build(policy.parameters())
    scheduler = config.get_scheduler_preset().build(optimizer, cfg.steps)
    grad_clip = config.get_optimizer_preset().grad_clip_norm
    step = 0
    if cfg.resume:
        from lerobot.common.train_utils import load_training_state

        step, optimizer, scheduler = load_training_state(last.resolve(), optimizer, scheduler)
        log.info("resumed %s at step %d", last.resolve(), step)
    run.mkdir(parents=True, exist_ok=True)
    (run / "train_config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    n_params = sum(p.numel() for p in policy.parameters())
    log.info("rcs_diffusion: %.2fM parameters", n_params / 1e6)

    # 3. the loop
    loss_log = run / "loss.csv"
    new_log = not (cfg.resume and loss_log.exists())
    history_steps, history_losses = _read_loss_log(loss_log) if not new_log else ([], [])
    checkpoint = last.resolve() if cfg.resume else run
    policy.train()
    bar = _progress(cfg.steps, step) if progress else None
    deadline = t_start + 60.0 * cfg.max_minutes if cfg.max_minutes else float("inf")
    running, stopped_early, loss_value = 0.0, False, float("nan")
    with loss_log.open("w" if new_log else "a", newline="") as f:
        writer = csv.writer(f)
        if new_log:
            writer.writerow(["step", "loss", "lr", "elapsed_s"])
        while step < cfg.steps:
            index = torch.randint(len(data), (cfg.batch_size,))
            batch = preprocessor(data.batch(index))
            loss, _ = policy.forward(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            loss_value = float(loss.detach())
            if not torch.isfinite(loss.detach()):
                raise FloatingPointError(f"loss is {loss_value} at step {step}: stopping (last checkpoint kept)")
            running += loss_value
            if step % cfg.log_every == 0:
                mean = running / cfg.log_every
                running = 0.0
                writer.writerow(
                    [step, f"{mean:.6g}", f"{scheduler.get_last_lr()[0]:.3g}", f"{time.monotonic() - t_start:.1f}"]
                )
                f.flush()
                history_steps.append(step)
                history_losses.append(mean)
                if bar is not None:
                    bar.set_postfix(loss=f"{mean:.4f}")
            if bar is not None:
                bar.update(1)
            out_of_time = time.monotonic() > deadline or step == cfg.stop_at
            if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
                checkpoint = save_checkpoint(run, step, policy, preprocessor, postprocessor, optimizer, scheduler)
                loss_curve_png(
                    run / "loss.png", history_steps, history_losses, f"rcs_diffusion training loss ({run.name})"
                )
                policy.train()
            if out_of_time:
                stopped_early = step < cfg.steps
                log.info("stopped at step %d (max_minutes=%s, stop_at=%s)", step, cfg.max_minutes, cfg.stop_at)
                break
    if bar is not None:
        bar.close()
    return TrainResult(step, checkpoint, loss_value, time.monotonic() - t_start, stopped_early)


def _read_loss_log(path: Path) -> tuple[list[int], list[float]]:
    steps, losses = [], []
    with path.open() as f:
        for row in csv.DictReader(f):
            steps.append(int(row["step"]))
            losses.append(float(row["loss"]))
    return steps, losses
