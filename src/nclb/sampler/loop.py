"""The sampler loop, written once: one forward pass per step, a policy picks what to commit."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.sampler.decoders import Decoder, StepView
from nclb.sampler.stats import PositionStats, position_stats
from nclb.tasks.base import Canvas

EXIT_STATS = ("mean", "max")


@dataclass
class SamplerConfig:
    """Settings of the loop that hold for every decoder.

    block: size of the active window that moves left to right (block >= gen_length: any-order).
    temperature: 0 commits the argmax, > 0 samples from softmax(logits / temperature).
    gamma: early exit threshold on the answer block's entropy (None: off).
    exit_stat: how the masked answer positions' entropies are aggregated (mean | max).
    stop_on_eos: once an eos is committed with every position before it filled, fill the rest
        of the reasoning (or the whole region, if there is no answer block) with eos.
    """

    block: int
    temperature: float = 0.0
    gamma: float | None = None
    exit_stat: str = "mean"
    stop_on_eos: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.block, int) and self.block >= 1):
            raise UserError(f"block={self.block!r} must be an integer >= 1")
        if self.temperature < 0:
            raise UserError(f"temperature={self.temperature!r} must be >= 0")
        if self.gamma is not None and self.gamma < 0:
            raise UserError(f"gamma={self.gamma!r} must be >= 0 (an entropy in nats) or null")
        if self.exit_stat not in EXIT_STATS:
            raise UserError(f"exit_stat={self.exit_stat!r} must be one of {list(EXIT_STATS)}")


@dataclass
class StepRecord:
    """One forward pass of one example: what it committed (region offsets) and how."""

    step: int
    positions: list[int]
    tokens: list[int]
    logprobs: list[float]
    entropies: list[float]
    early_exit: bool = False


@dataclass
class Generation:
    """The outcome for one canvas."""

    region: list[int]
    nfe: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    exit_step: int | None = None


def left_pad(canvases: list[Canvas], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack canvases as [pad.. prompt region] ids with a bool attention mask; returns the
    prompt width P so that the region of every row starts at column P."""
    lengths = {len(c.region) for c in canvases}
    if len(lengths) != 1:
        raise ValueError(f"canvases in one batch need one region length, got {sorted(lengths)}")
    width = max(len(c.prompt) for c in canvases)
    rows, masks = [], []
    for c in canvases:
        pad = width - len(c.prompt)
        rows.append([pad_id] * pad + c.prompt + c.region)
        masks.append([False] * pad + [True] * (len(c.prompt) + len(c.region)))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.bool), width


def answer_masks(canvases: list[Canvas], gen_length: int) -> torch.Tensor:
    """Bool [B, G]: the answer block of each canvas (all False where there is none)."""
    out = torch.zeros(len(canvases), gen_length, dtype=torch.bool)
    for i, c in enumerate(canvases):
        if c.answer is not None:
            out[i, c.answer[0] : c.answer[1]] = True
    return out


def active_window(masked: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The block index holding each row's leftmost mask, and the bool [B, G] window mask."""
    g = masked.shape[1]
    pos, pos_block = _positions(g, block)
    first = pos.masked_fill(~masked, g).min(dim=1).values
    index = first // block
    window = pos_block == index.unsqueeze(1)
    return index, window


@functools.lru_cache(maxsize=64)
def _positions(g: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Region offsets [G] and their block indices [1, G] (cached; never written to)."""
    pos = torch.arange(g)
    return pos, (pos // block).unsqueeze(0)


def exit_statistic(entropy: torch.Tensor, answer_masked: torch.Tensor, how: str) -> torch.Tensor:
    """Mean or max entropy over the masked answer positions of each row (inf where none)."""
    if how == "max":
        stat = entropy.masked_fill(~answer_masked, float("-inf")).max(dim=1).values
    else:
        stat = (entropy * answer_masked).sum(1) / answer_masked.sum(1).clamp(min=1)
    return stat.masked_fill(~answer_masked.any(1), float("inf"))


def record_steps(
    gens: list[Generation],
    rows: list[int],
    step: int,
    commit: torch.Tensor,
    tokens: torch.Tensor,
    s: PositionStats,
    exiting: torch.Tensor,
) -> None:
    """Count one forward pass for each of `rows` and append the positions each committed
    (`commit` [R, G]) to its trajectory; the batch is read in one pass, not row by row."""
    where = commit.nonzero()
    r, pos = where[:, 0], where[:, 1]
    positions, counts = pos.tolist(), commit.sum(1).tolist()
    toks = tokens[r, pos].tolist()
    logprobs, entropies = s.logprob[r, pos].tolist(), s.entropy[r, pos].tolist()
    start = 0
    for row, n, exited in zip(rows, counts, exiting.tolist()):
        gen, end = gens[row], start + n
        gen.nfe += 1
        gen.steps.append(
            StepRecord(
                step=step,
                positions=positions[start:end],
                tokens=toks[start:end],
                logprobs=logprobs[start:end],
                entropies=entropies[start:end],
                early_exit=exited,
            )
        )
        if exited:
            gen.exit_step = step
        start = end


def fill_after_eos(
    region: torch.Tensor, masked: torch.Tensor, answer: torch.Tensor, eos_ids: tuple[int, ...]
) -> torch.Tensor:
    """Bool [B, G]: masked non-answer positions after a committed eos that has no mask before it."""
    is_eos = torch.isin(region, torch.tensor(eos_ids)) & ~masked & ~answer
    mask_before = masked.cumsum(1) > 0
    closing = is_eos & ~mask_before
    after = closing.cumsum(1) > 0
    return after & masked & ~answer


@torch.no_grad()
def generate(
    model: MaskedLM,
    canvases: list[Canvas],
    decoder: Decoder,
    cfg: SamplerConfig,
    generator: torch.Generator | None = None,
    on_done: Callable[[int, Generation], None] | None = None,
) -> list[Generation]:
    """Fill the masked region positions of every canvas, one forward pass per step.

    Rows leave the batch as they finish, so each pass works only on unfinished examples;
    `on_done(index, generation)` is called as each one finishes (to log it at once).
    """
    ids, attn, width = left_pad(canvases, model.pad_id)
    gen_length = ids.shape[1] - width
    answer = answer_masks(canvases, gen_length)
    gens = [Generation(region=[]) for _ in canvases]
    # The state below holds the unfinished rows only (finished ones are dropped at the start of
    # each step); live[j] is the canvas index of row j.
    live = list(range(ids.shape[0]))
    block_index = torch.full((len(live),), -1, dtype=torch.long)
    block_step = torch.zeros(len(live), dtype=torch.long)
    block_masked = torch.zeros(len(live), dtype=torch.long)
    finished = ~(ids[:, width:] == model.mask_id).any(1)
    step = 0
    while True:
        if bool(finished.any()):
            for j in finished.nonzero().squeeze(1).tolist():
                gens[live[j]].region = ids[j, width:].tolist()
                if on_done is not None:
                    on_done(live[j], gens[live[j]])
            keep = ~finished
            live = [r for r, k in zip(live, keep.tolist()) if k]
            ids, attn, answer = ids[keep], attn[keep], answer[keep]
            block_index, block_step = block_index[keep], block_step[keep]
            block_masked = block_masked[keep]
        if not live:
            break
        logits = model.logits(ids.to(model.device), attn.to(model.device))
        # Statistics on the model's device; only the small [B, G] results come back. The mask
        # id is never chosen (a committed mask would stay masked and the loop would not end).
        s = position_stats(logits[:, width:], cfg.temperature, generator, model.mask_id)
        s = s.to("cpu")
        region = ids[:, width:]
        masked = region == model.mask_id
        index, window = active_window(masked, cfg.block)
        moved = index != block_index
        block_index = index
        block_step = torch.where(moved, 0, block_step)
        block_masked = torch.where(moved, (masked & window).sum(1), block_masked)
        commit = torch.zeros_like(masked)
        exiting = torch.zeros(len(live), dtype=torch.bool)
        tokens, n_deciding = s.token, len(live)
        if cfg.gamma is not None:
            answer_masked = masked & answer
            exiting = exit_statistic(s.entropy, answer_masked, cfg.exit_stat) < cfg.gamma
            commit[exiting] = answer_masked[exiting]
            tokens = torch.where(exiting.unsqueeze(1), s.greedy, s.token)
            n_deciding -= int(exiting.sum())
        if n_deciding:
            # Index only when some rows exit this step (the common case takes views).
            pick = slice(None) if n_deciding == len(live) else ~exiting
            view = StepView(
                candidates=(masked & window)[pick],
                stats=s.rows(pick),
                block_step=block_step[pick],
                block_masked=block_masked[pick],
                block_size=cfg.block,
                generator=generator,
            )
            chosen = decoder.select(view) & view.candidates
            if not chosen.any(1).all():
                raise RuntimeError(f"decoder {decoder.name} committed nothing for a row")
            commit[pick] = chosen
        region = torch.where(commit, tokens, region)
        record_steps(gens, live, step, commit, tokens, s, exiting)
        if cfg.stop_on_eos and model.eos_ids:
            still = region == model.mask_id
            region = region.masked_fill(
                fill_after_eos(region, still, answer, model.eos_ids), model.eos_ids[0]
            )
        ids[:, width:] = region
        block_step = block_step + 1
        finished = exiting | ~(region == model.mask_id).any(1)
        step += 1
    return gens
