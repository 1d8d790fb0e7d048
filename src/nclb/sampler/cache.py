"""Which positions a pass computes when the model keeps a key/value cache, and when it refreshes.

Modes (`cache=`):
  none:   every pass computes every position (the model keeps nothing between passes).
  prefix: the prompt and the finished blocks are cached; a pass recomputes the active block and
          everything after it.
  dual:   the masked suffix is cached too; a pass recomputes the active block only, plus the
          answer block when early exit is on (its entropies are read fresh at every pass) and
          the whole region for a decoder that scores visible tokens (`Decoder.scores_region`).
Refresh (`cache.refresh=`): `block` makes a full pass (every position, the cache rebuilt) at the
first pass in each block, as Fast-dLLM does; an integer N makes one every N passes (for any-order
decoding, where the one block never moves). A row's first pass is always a full pass. A full
pass decodes like any other and counts as one NFE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclb.errors import UserError
from nclb.schema import Flag, Integer, OneOf, check_fields, setting

MODES = ("none", "prefix", "dual")


@dataclass(frozen=True)
class CacheConfig:
    """The `cache` run key: mode and refresh policy (see the module docstring). audit: every
    cached pass is also made as a full pass (not counted, not used), and the KL between the two
    distributions at the positions it commits is logged (what the cache costs)."""

    mode: str = setting("none", OneOf(options=MODES), key="cache")
    refresh: str | int = setting("block", Integer(min=1, words=("block",)))
    audit: bool = setting(False, Flag())

    def __post_init__(self) -> None:
        check_fields(self, "cache.")


@dataclass
class QueryPlan:
    """One pass's work, per row: which region positions to compute and which rows refresh.

    compute: bool [R, G], region positions the pass recomputes (on refresh rows every position
        is computed; logits are still read only at these).
    refresh: bool [R], rows whose pass is a full pass that rebuilds their cache.
    """

    compute: torch.Tensor
    refresh: torch.Tensor


def plan_query(
    cfg: CacheConfig,
    window: torch.Tensor,
    answer: torch.Tensor | None,
    whole_region: bool,
    block_start: torch.Tensor,
    nfe: torch.Tensor,
    refreshed_block: torch.Tensor,
    refreshed_nfe: torch.Tensor,
    block_index: torch.Tensor,
) -> QueryPlan:
    """The positions and refreshes of one cached pass.

    window: bool [R, G], the active block; answer: bool [R, G], the answer block when early exit
    reads it (else None); whole_region: the decoder scores every position; block_start [R]: the
    active block's first offset; nfe [R]: passes so far; refreshed_block / refreshed_nfe [R]: the
    block index and pass number of each row's last refresh (-1: never); block_index [R]: the
    active block now.
    """
    compute = window.clone()
    if answer is not None:
        compute |= answer
    if whole_region:
        compute[:] = True
    if cfg.mode == "prefix":
        offsets = torch.arange(window.shape[1], device=window.device)
        compute |= offsets.unsqueeze(0) >= block_start.unsqueeze(1)
    never = refreshed_nfe < 0
    if cfg.refresh == "block":
        due = block_index != refreshed_block
    else:
        due = nfe - refreshed_nfe >= cfg.refresh
    return QueryPlan(compute=compute, refresh=never | due)


def no_cache_error(mode: str, model: str) -> UserError:
    """The one-line error for `cache=mode` asked of a model (`model`: how to name it) that has
    no key/value cache forward."""
    return UserError(
        f"cache={mode} needs a model with a key/value cache forward, and {model} has none; "
        "set cache=none"
    )


def mask_columns(mask: torch.Tensor) -> torch.Tensor:
    """Long [R, Q] column offsets of the True entries of `mask` [R, G], ascending, each row
    padded to the longest by repeating its last entry (Q >= 1; every row has one)."""
    counts = mask.sum(1)
    width = max(int(counts.max()), 1)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=mask.device).unsqueeze(0) < counts.unsqueeze(1)
    last = order.gather(1, (counts - 1).clamp(min=0).unsqueeze(1))
    return torch.where(valid, order, last)
