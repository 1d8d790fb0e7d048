"""Train the embedded tiny MDLM on a synthetic task (`nclb train`).

Objective (masked diffusion): per sequence a mask ratio t ~ U(0, 1), stratified over the batch;
every maskable region position (one the sampler would have to fill) is masked with probability t;
cross-entropy on the masked positions weighted by 1/t, summed and divided by the number of
maskable positions. The prompt and pre-filled region tokens (delimiter) are never masked.
AdamW, linear warmup then cosine decay, gradient clipping. The run folder holds the latest
Hugging Face checkpoint (`hf/`), the resumable state (`state.pt`) and `metrics.jsonl`.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.models.hf import FAMILIES, HFMaskedLM, resolve_device
from nclb.schema import Flag, Integer, Number, OneOf, from_fields, from_mapping, setting
from nclb.tasks.build import build_trainable_task
from nclb.threads import use_threads
from nclb.tiny.checkpoint import load_checkpoint, save_checkpoint
from nclb.tiny.modeling_nclb_tiny import NclbTinyConfig, NclbTinyForMaskedLM
from nclb.tiny.tokenizer import build_tokenizer
from nclb.training.batching import left_pad_targets
from nclb.training.evaluate import greedy_outputs
from nclb.training.loss import draw_masks, weighted_masked_ce
from nclb.training.schedule import ScheduledAdamW
from nclb.types import Example

EXPORT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
SIZE = Integer(min=1)


@dataclass
class ArchOptions:
    """The `arch:` keys of configs/train.yaml (NclbTinyConfig fields)."""

    hidden_size: int = setting(128, SIZE)
    num_hidden_layers: int = setting(4, SIZE)
    num_attention_heads: int = setting(4, SIZE)
    intermediate_size: int = setting(512, SIZE)
    max_position_embeddings: int = setting(256, SIZE)
    rope_theta: float = setting(10000.0, Number(open_min=True))
    absolute_positions: bool = setting(False, Flag())
    layer_norm_eps: float = setting(1e-5, Number(open_min=True))


@dataclass
class OptimOptions:
    """The `optim:` keys of configs/train.yaml."""

    lr: float = setting(1e-3, Number())
    weight_decay: float = setting(0.01, Number())
    warmup_frac: float = setting(0.03, Number(max=1))
    min_lr_ratio: float = setting(0.1, Number(max=1))
    steps: int = setting(100000, SIZE)
    minutes: float = setting(45, Number(open_min=True))
    batch_size: int = setting(64, SIZE)
    grad_clip: float = setting(1.0, Number(open_min=True))


@dataclass
class TrainOptions:
    """The top-level values of configs/train.yaml that training reads."""

    mask_eps: float = setting(1e-3, Number(max=1, open_min=True, open_max=True))
    corrupt: float = setting(0.0, Number(max=1, open_max=True))
    mask_max: float = setting(1.0, Number(max=1, open_min=True))
    seed: int = setting(0, Integer(min=0))
    workers: int = setting(0, Integer(min=0))
    resume: bool = setting(True, Flag())
    eval_every: int = setting(500, SIZE)
    eval_n: int = setting(128, SIZE)
    bar_s: float = setting(10, Number())
    export_dtype: str | None = setting(None, OneOf(nullable=True, options=tuple(EXPORT_DTYPES)))


def validate_config(cfg: DictConfig | dict) -> None:
    """One-line errors for a bad `nclb train` value, before anything loads or trains."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    arch = from_mapping(ArchOptions, data.get("arch"), "arch.")
    from_mapping(OptimOptions, data.get("optim"), "optim.")
    from_fields(TrainOptions, data)
    if (
        arch.hidden_size % arch.num_attention_heads
        or (arch.hidden_size // arch.num_attention_heads) % 2
    ):
        raise UserError(
            f"arch.hidden_size={arch.hidden_size} must split into arch.num_attention_heads="
            f"{arch.num_attention_heads} heads of an even width"
        )
    if data.get("mask_eps", 1e-3) >= data.get("mask_max", 1.0):
        raise UserError(
            f"mask_eps={data.get('mask_eps')} must be below mask_max={data.get('mask_max')}"
        )
    resolve_device(str(data.get("device", "auto")))
    build_trainable_task(dict(data["task"]))


def training_view(model: NclbTinyForMaskedLM, tokenizer) -> HFMaskedLM:
    """The tiny model under training through the MaskedLM interface of `nclb run` (batch layout
    and greedy evaluation); the model stays in training mode."""
    lm = HFMaskedLM(model, tokenizer, FAMILIES["tiny"], chat_template=False)
    model.train()
    return lm


def layout_view(tokenizer) -> HFMaskedLM:
    """A weightless MaskedLM for laying out training batches (prompt ids, special ids) in batch
    worker processes: its one-layer model lives on the meta device and holds no memory."""
    with torch.device("meta"):
        skeleton = _new_model(OmegaConf.create({"arch": {"num_hidden_layers": 1}}), tokenizer)
    return HFMaskedLM(skeleton, tokenizer, FAMILIES["tiny"], chat_template=False)


def make_batch(
    task, lm: MaskedLM, examples: list[Example], gen_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded gold sequences [B, N], attention mask [B, N] and maskable positions [B, N]."""
    rows = []
    for ex in examples:
        canvas = task.canvas(ex, lm, gen_length)
        gold = task.gold_region(ex, lm, gen_length)
        # A gold position left masked (an answer-only example's scratchpad) is never a target.
        can = [r == lm.mask_id and g != lm.mask_id for r, g in zip(canvas.region, gold)]
        rows.append((canvas.prompt, gold, can))
    prompts, golds, targets = zip(*rows, strict=True)
    return left_pad_targets(prompts, golds, targets, lm.pad_id)


def mdlm_loss(
    model: NclbTinyForMaskedLM,
    ids: torch.Tensor,
    attn: torch.Tensor,
    maskable: torch.Tensor,
    mask_id: int,
    eps: float,
    gen: torch.Generator | None = None,
    t_max: float = 1.0,
    corrupt: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1/t-weighted masked cross-entropy, and the masked-token accuracy of the batch.

    t = eps + (t_max - eps) * u with u stratified over the batch.

    corrupt > 0 also teaches the model to judge the tokens it can see (what a decoder that
    revokes commits needs): each visible maskable position is replaced, with probability
    `corrupt`, by the token of another maskable position of the same row, and the cross-entropy
    against the true token at every visible maskable position (replaced or not) is added,
    unweighted, to the loss (same normaliser).
    """
    t, masked = draw_masks(ids, maskable, eps, gen, t_max)
    inputs = ids.masked_fill(masked, mask_id)
    visible = maskable & ~masked
    if corrupt > 0:
        inputs = torch.where(
            visible & (torch.rand(ids.shape, generator=gen, device=ids.device) < corrupt),
            _shuffled_within_rows(ids, maskable, gen),
            inputs,
        )
    logits = model(inputs, attention_mask=attn).logits
    total = weighted_masked_ce(logits, ids, masked, t)
    if corrupt > 0:
        total = total + F.cross_entropy(logits[visible], ids[visible], reduction="sum")
    loss = total / maskable.sum().clamp(min=1)
    acc = (logits[masked].argmax(-1) == ids[masked]).float().mean()
    return loss, acc


def _shuffled_within_rows(
    ids: torch.Tensor, maskable: torch.Tensor, gen: torch.Generator | None
) -> torch.Tensor:
    """For every position, the token of a random maskable position of the same row."""
    noise = torch.rand(ids.shape, generator=gen, device=ids.device).masked_fill(~maskable, 2.0)
    order = noise.argsort(dim=1)  # maskable positions first, in random order
    count = maskable.sum(1, keepdim=True).clamp(min=1)
    pick = (torch.rand(ids.shape, generator=gen, device=ids.device) * count).long()
    return ids.gather(1, order.gather(1, pick))


@torch.no_grad()
def evaluate(task, lm: HFMaskedLM, cfg: DictConfig) -> dict[str, float]:
    """Held-out masked-token accuracy (fixed masks at t=0.5) and greedy exact-match accuracy
    (k=1 entropy decoding with the task's block) on the first `eval_n` test examples."""
    lm.model.eval()
    gen_length = int(cfg.task.gen_length)
    examples = task.examples(int(cfg.eval_n))
    ids, attn, maskable = make_batch(task, lm, examples, gen_length)
    g = torch.Generator().manual_seed(0)
    masked = (torch.rand(ids.shape, generator=g) < 0.5) & maskable
    ids, attn, masked = ids.to(lm.device), attn.to(lm.device), masked.to(lm.device)
    logits = lm.logits(ids.masked_fill(masked, lm.mask_id), attn)
    token_acc = (logits[masked].argmax(-1) == ids[masked]).float().mean().item()
    outputs = greedy_outputs(task, lm, examples, int(cfg.task.block), gen_length, 64)
    correct = sum(out.score.correct for out in outputs)
    lm.model.train()
    return {"token_acc": token_acc, "exact": correct / len(examples)}


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless `make_batch` outputs from the task's training stream.

    Worker w of a DataLoader draws from seed + 7777 w, so `workers=0` and worker 0 see the
    same stream; more workers build batches in parallel (a GPU outruns one CPU core).
    """

    def __init__(self, task, tokenizer, seed: int, size: int, gen_length: int) -> None:
        self.task, self.tokenizer = task, tokenizer
        self.seed, self.size, self.gen_length = seed, size, gen_length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        stream = self.task.train_stream(self.seed + 7777 * (info.id if info else 0))
        lm = layout_view(self.tokenizer)
        while True:
            examples = [next(stream) for _ in range(self.size)]
            yield make_batch(self.task, lm, examples, self.gen_length)


def _batches(task, tokenizer, seed: int, size: int, gen_length: int, workers: int):
    loader = torch.utils.data.DataLoader(
        _BatchStream(task, tokenizer, seed, size, gen_length),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=8 if workers else None,
        persistent_workers=bool(workers),
    )
    return iter(loader)


def _new_model(cfg: DictConfig, tokenizer) -> NclbTinyForMaskedLM:
    config = NclbTinyConfig(
        vocab_size=len(tokenizer),
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **OmegaConf.to_container(cfg.arch),
    )
    return NclbTinyForMaskedLM(config)


def _starting_point(
    cfg: DictConfig, out: Path, resume: bool, device: torch.device
) -> tuple[NclbTinyForMaskedLM, Any, dict[str, Any]]:
    """(model, tokenizer, state): the run's own last checkpoint and optimizer state when
    resuming, else the weights of `init` (a fresh optimizer and schedule), else a new model."""
    if resume:
        model, tokenizer = load_checkpoint(out / "hf")
        return (
            model,
            tokenizer,
            torch.load(out / "state.pt", weights_only=False, map_location=device),
        )
    if cfg.get("init"):
        if not (Path(cfg.init) / "config.json").is_file():
            raise UserError(f"init={cfg.init} is not a checkpoint folder (no config.json)")
        model, tokenizer = load_checkpoint(Path(cfg.init))
        return model, tokenizer, {"step": 0, "elapsed": 0.0}
    tokenizer = build_tokenizer()
    return _new_model(cfg, tokenizer), tokenizer, {"step": 0, "elapsed": 0.0}


def train(cfg: DictConfig | dict) -> Path:
    """Train (or resume) per `cfg` (configs/train.yaml); returns the final checkpoint folder."""
    cfg = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    validate_config(cfg)
    use_threads(cfg.get("threads"))
    device = resolve_device(cfg.device)
    task = build_trainable_task(OmegaConf.to_container(cfg.task, resolve=True))
    gen_length, opt_cfg = int(cfg.task.gen_length), cfg.optim
    out = Path(cfg.out_dir)
    hf_dir, state_path = out / "hf", out / "state.pt"
    resume = bool(cfg.resume) and state_path.is_file()
    torch.manual_seed(int(cfg.seed))
    model, tokenizer, state = _starting_point(cfg, out, resume, device)
    model.to(device).train()
    lm = training_view(model, tokenizer)
    opt = ScheduledAdamW(model.parameters(), opt_cfg, betas=(0.9, 0.98))
    if resume:
        opt.opt.load_state_dict(state["optimizer"])
    step, elapsed = int(state["step"]), float(state["elapsed"])
    steps, budget = int(opt_cfg.steps), 60.0 * float(opt_cfg.minutes)
    # A resumed run draws a fresh data stream (seeded by the step) instead of replaying one.
    batches = _batches(
        task,
        tokenizer,
        int(cfg.seed) * 1_000_003 + step + 1,
        int(opt_cfg.batch_size),
        gen_length,
        int(cfg.workers),
    )
    gen = torch.Generator(device=device).manual_seed(int(cfg.seed) * 7919 + step)
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "metrics.jsonl").open("a")
    bar = tqdm(total=steps, initial=step, desc=f"train {task.name}", mininterval=float(cfg.bar_s))
    n_params = sum(p.numel() for p in model.parameters())
    tqdm.write(
        f"{n_params:,} parameters on {device}; {f'resuming at step {step}' if resume else 'new'}"
    )

    def save() -> None:
        save_checkpoint(model, tokenizer, hf_dir)
        torch.save(
            {"step": step, "elapsed": elapsed, "optimizer": opt.opt.state_dict()}, state_path
        )

    started = time.time() - elapsed
    while step < steps and elapsed < budget:
        ids, attn, maskable = (x.to(device) for x in next(batches))
        eps, t_max, corrupt = float(cfg.mask_eps), float(cfg.mask_max), float(cfg.get("corrupt", 0))
        loss, acc = mdlm_loss(model, ids, attn, maskable, lm.mask_id, eps, gen, t_max, corrupt)
        opt.step(max(step / steps, elapsed / budget), loss.backward)
        step += 1
        elapsed = time.time() - started
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc.item():.3f}", refresh=False)
        if step % int(cfg.eval_every) == 0 or step >= steps or elapsed >= budget:
            metrics = evaluate(task, lm, cfg)
            record = {"step": step, "minutes": round(elapsed / 60, 2), "loss": loss.item()}
            record |= {"lr": opt.lr, **metrics}
            log.write(json.dumps(record) + "\n")
            log.flush()
            tqdm.write(json.dumps(record))
            save()
    bar.close()
    log.close()
    if cfg.export_dir:
        export_checkpoint(model, tokenizer, hf_dir, Path(cfg.export_dir), cfg.get("export_dtype"))
    tqdm.write(f"checkpoint: {hf_dir} (load it with model=tiny model.path={hf_dir})")
    return hf_dir


def export_checkpoint(
    model: NclbTinyForMaskedLM, tokenizer, hf_dir: Path, export: Path, dtype: str | None
) -> None:
    """Copy the final checkpoint folder to `export` (replacing it), its weights stored in
    `dtype` (fp16 | bf16 | fp32) when given."""
    shutil.rmtree(export, ignore_errors=True)
    shutil.copytree(hf_dir, export)
    if dtype:
        save_checkpoint(model.to(EXPORT_DTYPES[dtype]), tokenizer, export)
    tqdm.write(f"exported {export}")
