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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omegaconf import OmegaConf  # noqa: E402

from nclb.sampler import SamplerConfig, build_decoder, generate  # noqa: E402
from nclb.tasks.arith import ArithTask  # noqa: E402
from nclb.tiny.checkpoint import save_checkpoint  # noqa: E402
from nclb.tiny.tokenizer import build_tokenizer  # noqa: E402
from nclb.train import _new_model, _TinyLM, lr_factor, make_batch  # noqa: E402


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
        b = ids.shape[0]
        u = (torch.arange(b, device=device) + torch.rand(b, generator=gen, device=device)) / b
        t = 1e-3 + (1 - 1e-3) * u[torch.randperm(b, generator=gen, device=device)]
        masked = (torch.rand(ids.shape, generator=gen, device=device) < t[:, None]) & maskable
        logits = model(ids.masked_fill(masked, tokenizer.mask_token_id), attention_mask=attn).logits
        ce = F.cross_entropy(logits[masked], ids[masked], reduction="none")
        loss = (ce / t[:, None].expand_as(ids)[masked]).sum() / maskable.sum().clamp(min=1)
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
        canvases = [task.canvas(ex, lm, task.gen_length) for ex in examples]
        with torch.no_grad():
            gens = generate(lm, canvases, build_decoder("ktoken", k=1), SamplerConfig(block=8))
        correct = traced = 0
        for ex, canvas, g in zip(examples, canvases, gens, strict=True):
            text = lm.codec.decode(g.region)
            answer = lm.codec.decode(g.region[canvas.answer[0] : canvas.answer[1]])
            score = task.score(ex, text, answer)
            correct += score.correct
            traced += score.detail["trace_ok"]
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
