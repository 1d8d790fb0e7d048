"""Train the Table 4 base tiny model on one GPU: the `nclb train` objective and data, faster.

The base model sees gold scratchpads only for chains of at most `--trace-max-steps` steps and
only answers for longer ones (task option `trace_max_steps`). The CPU equivalent is

    nclb train model=tiny task=arith +task.trace_max_steps=2 threads=1 optim.minutes=30 \
        out_dir=outputs/train/arith-t2 export_dir=outputs/table4/base

This script exists because a shared 2-core CPU reaches only a few thousand steps in that time.
Batches are built by CPU worker processes; masking and the model run on the GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omegaconf import OmegaConf  # noqa: E402

from nclb.experiments.train_tiny import _new_model, _TinyLM, make_batch, mdlm_loss  # noqa: E402
from nclb.tasks.arith import ArithTask  # noqa: E402
from nclb.tiny.checkpoint import save_checkpoint  # noqa: E402
from nclb.tiny.tokenizer import build_tokenizer  # noqa: E402
from nclb.training.evaluate import greedy_outputs  # noqa: E402
from nclb.training.schedule import lr_factor  # noqa: E402


class Batches(torch.utils.data.IterableDataset):
    """Endless make_batch outputs from the task's training stream, one seed per worker."""

    def __init__(self, trace_max_steps: int, size: int, seed: int) -> None:
        self.trace_max_steps, self.size, self.seed = trace_max_steps, size, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        task = ArithTask(trace_max_steps=self.trace_max_steps)
        lm = _TinyLM(None, build_tokenizer())
        stream = task.train_stream(self.seed * 1000 + wid + 1)
        held = {ex.prompt for n in (2, 3) for ex in ArithTask(min_steps=n, max_steps=n).examples()}
        while True:
            batch = []
            while len(batch) < self.size:
                ex = next(stream)
                if ex.prompt not in held:  # the 2-step and 3-step test sets stay unseen
                    batch.append(ex)
            yield make_batch(task, lm, batch, task.gen_length)


def main() -> None:
    """Train, evaluate on the 2-step and 3-step test sets, save an HF checkpoint."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--trace-max-steps", type=int, default=2)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-n", type=int, default=500)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    arch = dict(
        hidden_size=128,
        num_hidden_layers=args.layers,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=256,
        absolute_positions=False,
    )
    tokenizer = build_tokenizer()
    model = _new_model(OmegaConf.create({"arch": arch}), tokenizer).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    loader = torch.utils.data.DataLoader(
        Batches(args.trace_max_steps, args.batch, args.seed),
        batch_size=None,
        num_workers=args.workers,
        prefetch_factor=8,
    )
    gen = torch.Generator(device=device).manual_seed(args.seed)
    start, log = time.time(), []
    for step, (ids, attn, maskable) in enumerate(loader, start=1):
        ids, attn, maskable = ids.to(device), attn.to(device), maskable.to(device)
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_factor(step / args.steps, 0.03, 0.1)
        loss, _ = mdlm_loss(model, ids, attn, maskable, tokenizer.mask_token_id, 1e-3, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 1000 == 0 or step == args.steps:
            entry = {"step": step, "loss": loss.item(), "seconds": round(time.time() - start, 1)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if step >= args.steps:
            break
    model.eval()
    lm = _TinyLM(model, tokenizer)
    lm.device = device
    results = {}
    for n_steps in (2, 3):
        task = ArithTask(min_steps=n_steps, max_steps=n_steps)
        examples = task.examples(args.eval_n)
        outputs = greedy_outputs(task, lm, examples, 8, task.gen_length, len(examples))
        correct = sum(out.score.correct for out in outputs)
        traced = sum(out.score.detail["trace_ok"] for out in outputs)
        n = len(examples)
        results[f"{n_steps}-step"] = {"accuracy": correct / n, "trace_ok": traced / n}
    print(json.dumps(results), flush=True)
    out = Path(args.out)
    save_checkpoint(model.cpu(), tokenizer, out)
    (out.parent / "base_gpu_log.json").write_text(
        json.dumps({"args": vars(args), "log": log, "eval": results}, indent=2)
    )


if __name__ == "__main__":
    main()
