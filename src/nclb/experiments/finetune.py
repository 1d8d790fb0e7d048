"""`nclb finetune`: fine-tune a masked diffusion LM on reasoning traces (the paper's Table 4).

Objective: the MDLM loss on the response only. Per sequence a mask ratio t = eps + (1 - eps) u,
u ~ U(0, 1) stratified over the batch; every response position (one the sampler would have to
fill: reasoning and answer block, never the prompt or a pre-filled delimiter) is masked with
probability t; cross-entropy on the masked positions weighted by 1/t, divided by the number of
response positions. Data: posterior traces (`nclb posterior` JSONL, `data.traces`) and/or gold
traces of the task's problems (`data.gold_n`). Full fine-tuning, or LoRA adapters through `peft`
(`lora.enabled=true`, the `lora` extra), merged into the saved checkpoint by default.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.models.build import build_model
from nclb.models.families import model_path
from nclb.models.hf import HFMaskedLM
from nclb.runs.revision import git_revision
from nclb.runs.runlog import read_records, write_json_atomic
from nclb.schema import Flag, Integer, Number, OneOf, field_rule, from_fields, setting
from nclb.tasks.base import ChecksTrace, HasReference, Task, Trainable
from nclb.tasks.build import SOURCES, build_task, model_context, problems
from nclb.threads import use_threads
from nclb.training.batching import left_pad_targets
from nclb.training.evaluate import greedy_outputs
from nclb.training.loss import draw_masks, weighted_masked_ce
from nclb.training.schedule import ScheduledAdamW
from nclb.types import Example

TRACE_MODES = ("posterior", "prior", "all")


@dataclass
class TrainItem:
    """One training sequence: prompt ids, the filled region, and which region positions are
    response targets (maskable)."""

    prompt: list[int]
    region: list[int]
    maskable: list[bool]


def gold_region(task: Task, example: Example, model: MaskedLM, gen_length: int) -> list[int]:
    """The gold filled region: the task's own `gold_region` (arith), else its reference solution
    (`reference_output`: reasoning in the masked positions before the answer block, cut to fit,
    answer block eos-padded)."""
    if isinstance(task, Trainable):
        return task.gold_region(example, model, gen_length)
    if not isinstance(task, HasReference):
        raise UserError(f"task={task.name} has no gold traces; use data.traces only")
    reasoning, answer = task.reference_output(example)
    canvas = task.canvas(example, model, gen_length)
    region = list(canvas.region)
    end = canvas.answer[0] if canvas.answer else len(region)
    slots = [i for i in range(end) if region[i] == model.mask_id]
    text = model.codec.encode(reasoning)[: len(slots)]
    text += [model.eos_ids[0]] * (len(slots) - len(text))
    for i, tok in zip(slots, text, strict=True):
        region[i] = tok
    if canvas.answer:
        start, stop = canvas.answer
        ids = model.codec.encode(answer or "")[: stop - start]
        region[start:stop] = ids + [model.eos_ids[0]] * (stop - start - len(ids))
    return region


def item_for(task: Task, example: Example, model: MaskedLM, region: list[int], gen_length: int):
    """A TrainItem: the canvas's masked positions that the region fills are the targets."""
    canvas = task.canvas(example, model, gen_length)
    if len(region) != len(canvas.region):
        raise UserError(
            f"a trace of {example.id} has {len(region)} region tokens but the canvas has "
            f"{len(canvas.region)}; use the gen_length the traces were made with"
        )
    maskable = [c == model.mask_id and r != model.mask_id for c, r in zip(canvas.region, region)]
    return TrainItem(canvas.prompt, list(region), maskable)


def load_items(
    data: dict[str, Any], task: Task, model: MaskedLM, gen_length: int
) -> tuple[list[TrainItem], dict[str, int]]:
    """Training items from trace files and gold traces, and how many came from each."""
    items, counts = [], {"traces": 0, "gold": 0, "dropped": 0}
    mode = data.get("trace_mode", "posterior")
    field_rule(FinetuneData, "trace_mode").check("data.trace_mode", mode)
    floor = data.get("min_answer_logprob")
    for path in data.get("traces") or []:
        if not Path(path).is_file():
            raise UserError(f"data.traces: {path} is not a file (write one with `nclb posterior`)")
        for r in read_records(Path(path), key=None):  # several traces per problem id
            if mode != "all" and r.get("mode") != mode:
                continue
            if (floor is not None and r["answer_logprob"] < floor) or (
                data.get("require_trace_ok") and r.get("trace_ok") is False
            ):
                counts["dropped"] += 1
                continue
            ex = Example(r["id"], r["prompt"], r.get("gold"))
            items.append(item_for(task, ex, model, r["region_ids"], gen_length))
            counts["traces"] += 1
    gold_n = int(data.get("gold_n") or 0)
    if gold_n:
        source = data.get("gold_source", "train_stream")
        for ex in problems(task, source, gold_n, int(data.get("gold_seed", 7))):
            region = gold_region(task, ex, model, gen_length)
            items.append(item_for(task, ex, model, region, gen_length))
            counts["gold"] += 1
    if not items:
        raise UserError("no training data: set data.traces=[file.jsonl] and/or data.gold_n=N")
    return items, counts


def collate(items: list[TrainItem], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Left-padded ids [B, N], attention mask [B, N] and response targets [B, N]."""
    prompts, regions = [it.prompt for it in items], [it.region for it in items]
    return left_pad_targets(prompts, regions, [it.maskable for it in items], pad_id)


def response_mdlm_loss(
    lm: HFMaskedLM,
    ids: torch.Tensor,
    attn: torch.Tensor,
    maskable: torch.Tensor,
    eps: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """The 1/t-weighted masked cross-entropy over response positions (module docstring).
    Random draws are made on the CPU (`gen`), so a seed gives the same masks on any device."""
    t, masked = draw_masks(ids, maskable, eps, gen)
    device = lm.device
    inputs = ids.masked_fill(masked, lm.mask_id).to(device)
    logits = lm.training_logits(inputs, attn.to(device))
    return weighted_masked_ce(logits, ids, masked, t) / maskable.sum().clamp(min=1).to(device)


def add_lora(lm: MaskedLM, cfg: dict[str, Any]):
    """Wrap lm.model with LoRA adapters (peft); only the adapters train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError(
            "lora.enabled=true needs peft: pip install 'nclb[lora]' (or pip install peft)"
        ) from None
    targets = list(cfg.get("target_modules") or [])
    if not targets:
        raise UserError("lora.target_modules is empty; name the linear layers to adapt")
    config = LoraConfig(
        r=int(cfg["r"]),
        lora_alpha=int(cfg["alpha"]),
        lora_dropout=float(cfg["dropout"]),
        target_modules=targets,
        bias="none",
    )
    try:
        lm.model = get_peft_model(lm.model, config)
    except ValueError as err:
        first = str(err).strip().splitlines()[0]
        raise UserError(f"lora.target_modules={targets}: {first}") from None
    return lm.model


@torch.no_grad()
def evaluate(task: Task, lm: MaskedLM, n: int, block: int, gen_length: int, batch: int) -> dict:
    """Greedy k=1 entropy decoding on the first n evaluation examples: accuracy, and the
    fraction of correct traces where the task can check them."""
    lm.model.eval()
    examples = task.examples(n)
    correct, traced, checked = 0, 0, 0
    for ex, out in zip(examples, greedy_outputs(task, lm, examples, block, gen_length, batch)):
        correct += out.score.correct
        if isinstance(task, ChecksTrace):
            checked += 1
            traced += bool(task.check_trace(out.text, ex.prompt))
    out = {"n": len(examples), "accuracy": correct / max(1, len(examples))}
    if checked:
        out["trace_ok"] = traced / checked
    return out


def save_model(lm: MaskedLM, source: Path | None, folder: Path, lora: dict[str, Any]) -> Path:
    """Save the fine-tuned model as a checkpoint folder `model.path=` can load (LoRA merged),
    or, with lora.merge=false, the adapter alone under `adapter/`."""
    model = lm.model
    if lora.get("enabled") and not lora.get("merge", True):
        target = folder / "adapter"
        model.save_pretrained(target)
        return target
    if lora.get("enabled"):
        model = model.merge_and_unload()
    target = folder / "hf"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    model.save_pretrained(target, safe_serialization=True)
    lm.tokenizer.save_pretrained(target)
    if source is not None and source.is_dir():  # remote code files the checkpoint needs
        for code in source.glob("*.py"):
            if not (target / code.name).exists():
                shutil.copyfile(code, target / code.name)
    return target


@dataclass
class FinetuneOptim:
    """The bounded `optim:` keys of configs/finetune.yaml."""

    lr: float = setting(3e-4, Number(open_min=True))
    steps: int = setting(300, Integer(min=1))
    batch_size: int = setting(32, Integer(min=1))
    grad_accum: int = setting(1, Integer(min=1))
    warmup_frac: float = setting(0.05, Number(max=1))
    min_lr_ratio: float = setting(0.1, Number(max=1))
    weight_decay: float = setting(0.0, Number())
    grad_clip: float = setting(1.0, Number(open_min=True))


@dataclass
class FinetuneData:
    """The bounded `data:` keys of configs/finetune.yaml."""

    trace_mode: str = setting("posterior", OneOf(options=TRACE_MODES))
    require_trace_ok: bool = setting(False, Flag())
    gold_n: int = setting(0, Integer(min=0))
    gold_source: str = setting("train_stream", OneOf(options=SOURCES))
    gold_seed: int = setting(7, Integer(min=0))


@dataclass
class FinetuneOptions:
    """The bounded top-level keys of configs/finetune.yaml."""

    mask_eps: float = setting(1e-3, Number(max=1, open_min=True, open_max=True))
    log_every: int = setting(50, Integer(min=1))
    seed: int = setting(0, Integer(min=0))


def validate_config(cfg: dict[str, Any]) -> None:
    """One-line errors for bad values, before anything loads."""
    from_fields(FinetuneOptim, cfg["optim"], "optim.")
    from_fields(FinetuneData, cfg["data"], "data.")
    from_fields(FinetuneOptions, cfg)


def load_trainable(
    cfg: dict[str, Any], task: Task, gen_length: int
) -> tuple[MaskedLM, Path | None]:
    """The model to fine-tune (model group, or `init`) and the checkpoint folder it came from
    (None for a hub id: save_model then writes the weights only)."""
    model_cfg = dict(cfg["model"])
    if cfg.get("init"):
        model_cfg["path"] = str(cfg["init"])
    model_cfg["device"] = cfg.get("device", "auto")
    lm = build_model(model_cfg, model_context(task, [], gen_length))
    if not hasattr(lm, "model"):
        raise UserError(
            f"model={model_cfg.get('name')} has no trainable weights; use tiny, llada or dream"
        )
    source = model_path(model_cfg, task.name)
    return lm, None if source is None else Path(source)


def train_steps(lm: MaskedLM, items: list[TrainItem], cfg: dict[str, Any], out: Path) -> int:
    """`optim.steps` optimizer steps on the response-only MDLM loss over shuffled epochs of
    `items`, logging the mean loss every `log_every` steps to out/metrics.jsonl; returns the
    number of sequences trained on."""
    torch.manual_seed(int(cfg["seed"]))
    lm.model.train()
    optim = cfg["optim"]
    opt = ScheduledAdamW(lm.model.parameters(), optim)
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    steps, size, accum = int(optim["steps"]), int(optim["batch_size"]), int(optim["grad_accum"])
    order: list[int] = []
    start, running = time.time(), []

    def backward() -> None:
        nonlocal order
        for _ in range(accum):
            if len(order) < size:
                order += torch.randperm(len(items), generator=gen).tolist()
            batch, order = [items[i] for i in order[:size]], order[size:]
            ids, attn, maskable = collate(batch, lm.pad_id)
            loss = response_mdlm_loss(lm, ids, attn, maskable, float(cfg["mask_eps"]), gen)
            (loss / accum).backward()
            running.append(loss.item())

    with (out / "metrics.jsonl").open("w") as log:
        for step in range(1, steps + 1):
            opt.step((step - 1) / steps, backward)
            if step % int(cfg["log_every"]) == 0 or step == steps:
                entry = {"step": step, "loss": sum(running) / len(running), "lr": opt.lr}
                entry["seconds"] = round(time.time() - start, 1)
                running = []
                log.write(json.dumps(entry) + "\n")
                log.flush()
                print(json.dumps(entry))
    lm.model.eval()
    return steps * size * accum


def finetune(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run `nclb finetune` per `cfg` (configs/finetune.yaml); returns the summary."""
    validate_config(cfg)
    use_threads(cfg.get("threads"))
    task_cfg = dict(cfg["task"])
    gen_length = int(cfg.get("gen_length") or task_cfg["gen_length"])
    task_cfg["gen_length"] = gen_length
    block = int(cfg["eval"].get("block") or task_cfg.get("block") or gen_length)
    task = build_task(task_cfg)
    lm, source = load_trainable(cfg, task, gen_length)
    items, counts = load_items(cfg["data"], task, lm, gen_length)
    out = Path(cfg["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    ev = cfg["eval"]
    summary: dict[str, Any] = {"data": counts}
    if ev.get("n") and ev.get("before"):
        summary["eval_before"] = evaluate(
            task, lm, int(ev["n"]), block, gen_length, int(ev["batch_size"])
        )
        print(f"before fine-tuning: {summary['eval_before']}")
    lora = dict(cfg.get("lora") or {})
    if lora.get("enabled"):
        add_lora(lm, lora)
    start = time.time()
    sequences = train_steps(lm, items, cfg, out)
    if ev.get("n"):
        summary["eval"] = evaluate(task, lm, int(ev["n"]), block, gen_length, int(ev["batch_size"]))
    saved = save_model(lm, source, out, lora)
    summary |= {
        "checkpoint": str(saved),
        "examples": len(items),
        "epochs": sequences / len(items),
        "seconds": time.time() - start,
        "git": git_revision(),
        "config": cfg,
    }
    write_json_atomic(out / "summary.json", summary)
    acc = summary.get("eval", {}).get("accuracy")
    shown = "n/a" if acc is None or math.isnan(acc) else f"{acc:.3f}"
    print(f"fine-tuned on {len(items)} sequences ({counts}); accuracy {shown} -> {saved}")
    return summary
