"""Greedy evaluation during and after training: k=1 entropy decoding, read back and scored."""

from __future__ import annotations

import torch

from nclb.models.base import MaskedLM
from nclb.sampler import SamplerConfig, build_decoder, generate
from nclb.tasks.base import Task
from nclb.tasks.outputs import Output, read_output
from nclb.types import Example


@torch.no_grad()
def greedy_outputs(
    task: Task,
    lm: MaskedLM,
    examples: list[Example],
    block: int,
    gen_length: int,
    batch_size: int,
) -> list[Output]:
    """Each example decoded with k=1 in entropy order (the task's canvas, `block`), in batches
    of `batch_size`, read back and scored."""
    decoder, sampler = build_decoder("ktoken", k=1, order="entropy"), SamplerConfig(block=block)
    outputs = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        canvases = [task.canvas(ex, lm, gen_length) for ex in chunk]
        generations = generate(lm, canvases, decoder, sampler)
        for ex, canvas, g in zip(chunk, canvases, generations, strict=True):
            outputs.append(read_output(task, lm, ex, canvas, g.region))
    return outputs
