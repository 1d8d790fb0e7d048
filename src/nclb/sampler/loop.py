"""The sampler loop, written once: one forward pass per step, a policy picks what to commit.

Continuous batching: at most `batch_size` rows are in flight; when rows finish, canvases from the
queue take their places (every row re-padded to the widest prompt in flight), so each forward
pass is full until the queue runs dry. Everything a step computes (statistics, the decoder's
choice, commits, the exit test, the trajectory) stays on the model's device; the host reads one
small flag vector per step, and each finished row's data once.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import torch

from nclb.models.base import MaskedLM
from nclb.models.kvcache import KVCache
from nclb.models.padding import left_pad as pad_rows
from nclb.sampler.cache import CacheConfig, QueryPlan, mask_columns, no_cache_error, plan_query
from nclb.sampler.policy import Decoder, StepView
from nclb.sampler.stats import PositionStats, blank_stats, position_stats, scatter_stats
from nclb.sampler.streams import ORDER, TOKEN, default_streams, row_keys, uniforms
from nclb.schema import Flag, Integer, Number, OneOf, check_fields, setting
from nclb.types import Canvas

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
    cache: the key/value cache (nclb.sampler.cache.CacheConfig; mode none: every pass computes
        every position).
    """

    block: int = setting(rule=Integer(min=1))
    temperature: float = setting(0.0, Number(meaning="0 = argmax"))
    gamma: float | None = setting(
        None, Number(nullable=True, meaning="an entropy in nats; null = off")
    )
    exit_stat: str = setting("mean", OneOf(options=EXIT_STATS))
    stop_on_eos: bool = setting(False, Flag())
    cache: CacheConfig = field(default_factory=CacheConfig)

    def identity(self) -> dict:
        """The settings as a run's identity holds them (the cache only when it is on, so runs
        logged before the cache existed keep their folders)."""
        out = asdict(self)
        if self.cache.mode == "none":
            out.pop("cache")
        return out

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class StepRecord:
    """One forward pass of one example: what it committed (region offsets) and how.

    revoked: positions a revoking decoder masked again at this pass. A position's entry in
    `positions` is its last commit (the one in the output); a commit that was later revoked
    shows as the revocation.
    """

    step: int
    positions: list[int]
    tokens: list[int]
    logprobs: list[float]
    entropies: list[float]
    early_exit: bool = False
    revoked: list[int] = field(default_factory=list)


@dataclass
class Generation:
    """The outcome for one canvas; `seconds`: wall time from entering the batch to finishing;
    `computed`: the positions (prompt included) its forward passes computed, summed over them;
    `refreshes`: how many of its passes were full passes that refreshed its key/value cache;
    `cache_kl`: with cache.audit, the mean KL(full pass || cached pass) at the positions its
    cached passes committed (None: not audited, or no commit from a cached pass)."""

    region: list[int]
    nfe: int = 0
    steps: list[StepRecord] = field(default_factory=list)
    exit_step: int | None = None
    seconds: float = 0.0
    computed: int = 0
    refreshes: int = 0
    cache_kl: float | None = None


def _left_pad(
    canvases: list[Canvas], pad_id: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Stack canvases as [pad.. prompt region] ids with a bool attention mask, left-padded to
    prompt width `width` (at least the longest prompt), so every row's region starts there."""
    lengths = {len(c.region) for c in canvases}
    if len(lengths) != 1:
        raise ValueError(f"canvases in one batch need one region length, got {sorted(lengths)}")
    return pad_rows([c.prompt for c in canvases], [c.region for c in canvases], pad_id, width)


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
    pos, pos_block = _positions(g, block, masked.device)
    first = pos.masked_fill(~masked, g).min(dim=1).values
    index = first // block
    window = pos_block == index.unsqueeze(1)
    return index, window


@functools.lru_cache(maxsize=64)
def _positions(g: int, block: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Region offsets [G] and their block indices [1, G] (cached; never written to)."""
    pos = torch.arange(g, device=device)
    return pos, (pos // block).unsqueeze(0)


def exit_statistic(entropy: torch.Tensor, answer_masked: torch.Tensor, how: str) -> torch.Tensor:
    """Mean or max entropy over the masked answer positions of each row (inf where none)."""
    if how == "max":
        stat = entropy.masked_fill(~answer_masked, float("-inf")).max(dim=1).values
    else:
        stat = (entropy * answer_masked).sum(1) / answer_masked.sum(1).clamp(min=1)
    return stat.masked_fill(~answer_masked.any(1), float("inf"))


def fill_after_eos(
    region: torch.Tensor, masked: torch.Tensor, answer: torch.Tensor, eos: torch.Tensor
) -> torch.Tensor:
    """Bool [B, G]: masked non-answer positions after a committed eos (an id in `eos`, a long
    tensor on the region's device) that has no mask before it."""
    is_eos = torch.isin(region, eos) & ~masked & ~answer
    mask_before = masked.cumsum(1) > 0
    closing = is_eos & ~mask_before
    after = closing.cumsum(1) > 0
    return after & masked & ~answer


@dataclass
class Rows:
    """The rows in flight, on the model's device: row j decodes canvas `index[j]`.

    ids, attn: [R, width + G] left-padded prompt and region, True on real tokens.
    answer: bool [R, G], the answer block. block_index, block_step, block_masked: [R], the
    active window's index, the passes spent in it, its masked positions when it became active.
    nfe: [R] forward passes so far (the row's own step counter). keys: [R, 2] random stream
    keys (nclb.sampler.streams). Trajectory, one entry per region position (a position is
    committed once): commit_step (-1: not committed by the loop), commit_token, commit_logprob,
    commit_entropy [R, G]; exit_step [R] (-1: no early exit).
    For revoking decoders: revocations [R, G] (times each position was masked again),
    revoke_step [R, G] (the last pass that did it, -1: never), fresh [R, G] (committed at the
    previous pass). For decoders that compare passes: previous_logp [R, G, V] (the previous
    pass's log-probabilities; [R, 0, 0] when unused) and has_previous [R].
    With a key/value cache: cache (the model's per-row state, None until the first refresh),
    refreshed_block, refreshed_nfe [R] (the active block and pass number at the row's last
    refresh, -1: never). computed, refreshes [R]: positions computed and full passes so far;
    audit_kl, audit_n [R]: with cache.audit, the summed KL at cached commits and their count.
    """

    ids: torch.Tensor
    attn: torch.Tensor
    answer: torch.Tensor
    block_index: torch.Tensor
    block_step: torch.Tensor
    block_masked: torch.Tensor
    nfe: torch.Tensor
    keys: torch.Tensor
    commit_step: torch.Tensor
    commit_token: torch.Tensor
    commit_logprob: torch.Tensor
    commit_entropy: torch.Tensor
    exit_step: torch.Tensor
    revocations: torch.Tensor
    revoke_step: torch.Tensor
    fresh: torch.Tensor
    previous_logp: torch.Tensor
    has_previous: torch.Tensor
    refreshed_block: torch.Tensor
    refreshed_nfe: torch.Tensor
    computed: torch.Tensor
    refreshes: torch.Tensor
    audit_kl: torch.Tensor
    audit_n: torch.Tensor
    index: list[int]
    prompt_lengths: list[int]
    started: list[float]
    width: int
    cache: KVCache | None = None

    @staticmethod
    def build(
        canvases: list[Canvas],
        index: list[int],
        streams: list[int],
        pad_id: int,
        width: int,
        device: torch.device,
        vocab: int = 0,
    ) -> Rows:
        """Fresh rows for `canvases` (canvas numbers `index`), padded to prompt `width`;
        `vocab` > 0 keeps room for the previous pass's log-probabilities."""
        ids, attn, _ = _left_pad(canvases, pad_id, width)
        n, g = len(canvases), len(canvases[0].region)

        def filled(value: float, dtype: torch.dtype, *shape: int) -> torch.Tensor:
            return torch.full((n, *shape), value, dtype=dtype, device=device)

        return Rows(
            ids=ids.to(device),
            attn=attn.to(device),
            answer=answer_masks(canvases, g).to(device),
            block_index=filled(-1, torch.long),
            block_step=filled(0, torch.long),
            block_masked=filled(0, torch.long),
            nfe=filled(0, torch.long),
            keys=row_keys(streams, device),
            commit_step=filled(-1, torch.long, g),
            commit_token=filled(-1, torch.long, g),
            commit_logprob=filled(0.0, torch.float32, g),
            commit_entropy=filled(0.0, torch.float32, g),
            exit_step=filled(-1, torch.long),
            revocations=filled(0, torch.long, g),
            revoke_step=filled(-1, torch.long, g),
            fresh=filled(False, torch.bool, g),
            previous_logp=filled(0.0, torch.float32, g if vocab else 0, vocab),
            has_previous=filled(False, torch.bool),
            refreshed_block=filled(-1, torch.long),
            refreshed_nfe=filled(-1, torch.long),
            computed=filled(0, torch.long),
            refreshes=filled(0, torch.long),
            audit_kl=filled(0.0, torch.float64),
            audit_n=filled(0, torch.long),
            index=list(index),
            prompt_lengths=[len(c.prompt) for c in canvases],
            started=[time.perf_counter()] * n,
            width=width,
        )

    def __len__(self) -> int:
        return len(self.index)

    def _tensors(self) -> list[str]:
        return [f.name for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)]

    def keep(self, rows: list[int]) -> Rows:
        """Only the rows numbered `rows`, in that order."""
        pick = torch.tensor(rows, dtype=torch.long, device=self.ids.device)
        out = {name: getattr(self, name).index_select(0, pick) for name in self._tensors()}
        return Rows(
            **out,
            index=[self.index[j] for j in rows],
            prompt_lengths=[self.prompt_lengths[j] for j in rows],
            started=[self.started[j] for j in rows],
            width=self.width,
            cache=None if self.cache is None else self.cache.select(pick),
        )

    def padded_to(self, width: int, pad_id: int) -> Rows:
        """The same rows with their prompts left-padded to `width` (at least the longest)."""
        if width == self.width:
            return self
        if width < self.width:  # the leading columns are padding in every row
            cut = self.width - width
            ids, attn = self.ids[:, cut:], self.attn[:, cut:]
        else:
            extra = (len(self), width - self.width)
            pad = torch.full(extra, pad_id, dtype=torch.long, device=self.ids.device)
            ids = torch.cat([pad, self.ids], dim=1)
            off = torch.zeros(extra, dtype=torch.bool, device=self.ids.device)
            attn = torch.cat([off, self.attn], dim=1)
        out = {name: getattr(self, name) for name in self._tensors()}
        out.update(ids=ids, attn=attn)
        g = self.ids.shape[1] - self.width
        return Rows(
            **out,
            index=self.index,
            prompt_lengths=self.prompt_lengths,
            started=self.started,
            width=width,
            cache=None if self.cache is None else self.cache.padded_to(width + g),
        )

    def join(self, other: Rows) -> Rows:
        """These rows followed by `other`'s (both padded to the same width)."""
        out = {n: torch.cat([getattr(self, n), getattr(other, n)]) for n in self._tensors()}
        return Rows(
            **out,
            index=self.index + other.index,
            prompt_lengths=self.prompt_lengths + other.prompt_lengths,
            started=self.started + other.started,
            width=self.width,
            cache=joined_cache(self.cache, len(self), other.cache, len(other)),
        )


def joined_cache(
    first: KVCache | None, first_rows: int, second: KVCache | None, second_rows: int
) -> KVCache | None:
    """The caches of two row sets one after the other; a set without one (its rows not yet
    refreshed) gets zero rows shaped like the other's."""
    if first is None and second is None:
        return None
    first = first if first is not None else second.blank(first_rows)
    second = second if second is not None else first.blank(second_rows)
    return first.join(second)


def trajectory(host: list[float], g: int) -> tuple[list[int], list[StepRecord], int, int | None]:
    """(region, step records, nfe, exit step) of one row from its host copy: region,
    commit_step, commit_token, commit_logprob, commit_entropy ([G] each), nfe, exit_step,
    revoke_step [G] (then computed and refreshes, read by the caller)."""
    region = [int(v) for v in host[:g]]
    step_of, token = host[g : 2 * g], host[2 * g : 3 * g]
    logprob, entropy = host[3 * g : 4 * g], host[4 * g : 5 * g]
    nfe, exit_step = int(host[5 * g]), int(host[5 * g + 1])
    revoked_at = host[5 * g + 2 : 6 * g + 2]
    by_step: list[list[int]] = [[] for _ in range(nfe)]
    revoked: list[list[int]] = [[] for _ in range(nfe)]
    for p, t in enumerate(step_of):
        if t >= 0:
            by_step[int(t)].append(p)
    for p, t in enumerate(revoked_at):
        if t >= 0:
            revoked[int(t)].append(p)
    steps = [
        StepRecord(
            step=t,
            positions=ps,
            tokens=[int(token[p]) for p in ps],
            logprobs=[logprob[p] for p in ps],
            entropies=[entropy[p] for p in ps],
            early_exit=t == exit_step,
            revoked=revoked[t],
        )
        for t, ps in enumerate(by_step)
    ]
    return region, steps, nfe, exit_step if exit_step >= 0 else None


class Decoding:
    """The state of one `generate` call: the queue, the rows in flight, the finished outcomes.

    `step()` makes one forward pass for every row in flight and commits; `retire()` hands the
    finished rows to the host; `refill()` admits queued canvases into the free places.
    """

    def __init__(
        self,
        model: MaskedLM,
        canvases: list[Canvas],
        decoder: Decoder,
        cfg: SamplerConfig,
        batch_size: int,
        streams: list[int],
        on_done: Callable[[int, Generation], None] | None,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        self.model, self.canvases, self.decoder, self.cfg = model, canvases, decoder, cfg
        self.batch_size, self.streams, self.on_done = batch_size, streams, on_done
        self.on_step = on_step
        self.device = torch.device(model.device)
        self.gen_length = len(canvases[0].region) if canvases else 0
        if any(len(c.region) != self.gen_length for c in canvases):
            lengths = sorted({len(c.region) for c in canvases})
            raise ValueError(f"canvases in one generate call need one region length, got {lengths}")
        self.eos = torch.tensor(model.eos_ids, dtype=torch.long, device=self.device)
        self.revoking = decoder.revokes
        self.max_revocations = decoder.max_revocations
        self.vocab = model.vocab_size if decoder.needs_previous else 0
        self.cached = cfg.cache.mode != "none"
        self.audit: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.cached and model.cached_forward is None:
            raise no_cache_error(cfg.cache.mode, "this model")
        self.queue = deque(range(len(canvases)))
        self.rows: Rows | None = None
        self.gens = [Generation(region=[]) for _ in canvases]

    def finish(self, i: int, gen: Generation) -> None:
        """Store canvas i's outcome and report it."""
        self.gens[i] = gen
        if self.on_done is not None:
            self.on_done(i, gen)

    def refill(self) -> None:
        """Admit queued canvases until `batch_size` rows are in flight (a canvas with nothing
        masked finishes at once, with no forward pass), and re-pad to the widest prompt."""
        live = len(self.rows) if self.rows is not None else 0
        take: list[int] = []
        while self.queue and live + len(take) < self.batch_size:
            i = self.queue.popleft()
            if self.model.mask_id in self.canvases[i].region:
                take.append(i)
            else:
                self.finish(i, Generation(region=list(self.canvases[i].region)))
        lengths = [len(self.canvases[i].prompt) for i in take]
        if self.rows is not None:
            lengths += self.rows.prompt_lengths
        if not lengths:
            self.rows = None
            return
        width = max(lengths)
        if self.rows is not None:
            self.rows = self.rows.padded_to(width, self.model.pad_id)
        if take:
            new = Rows.build(
                [self.canvases[i] for i in take],
                take,
                [self.streams[i] for i in take],
                self.model.pad_id,
                width,
                self.device,
                self.vocab,
            )
            self.rows = new if self.rows is None else self.rows.join(new)

    def step(self) -> list[int]:
        """One forward pass for every row in flight: statistics, the decoder's commits or the
        early exit, the trajectory. Returns the row numbers that finished."""
        r, cfg, mask_id = self.rows, self.cfg, self.model.mask_id
        g = self.gen_length
        region = r.ids[:, r.width :]
        masked = region == mask_id
        index, window = active_window(masked, cfg.block)
        moved = index != r.block_index
        r.block_index = index
        r.block_step = torch.where(moved, 0, r.block_step)
        r.block_masked = torch.where(moved, (masked & window).sum(1), r.block_masked)
        uniform = None
        if cfg.temperature > 0:
            uniform = uniforms(r.keys[:, TOKEN], r.nfe, g)
        if self.on_step is not None:
            self.on_step(len(r))
        s, logits = self.forward(window, uniform)
        view = StepView(
            candidates=masked & window,
            stats=s,
            block_step=r.block_step,
            block_masked=r.block_masked,
            uniform=lambda: uniforms(r.keys[:, ORDER], r.nfe, g),
        )
        revoked = self.look_back(view, logits, region, masked)
        commit = self.decoder.select(view) & view.candidates
        stalled = ~commit.any(1)
        tokens = s.token
        if cfg.gamma is not None:
            answer_masked = masked & r.answer
            exiting = exit_statistic(s.entropy, answer_masked, cfg.exit_stat) < cfg.gamma
            commit = torch.where(exiting.unsqueeze(1), answer_masked, commit)
            tokens = torch.where(exiting.unsqueeze(1), s.greedy, s.token)
            stalled &= ~exiting
            r.exit_step = torch.where(exiting, r.nfe, r.exit_step)
        else:
            exiting = torch.zeros_like(stalled)
        revoked &= ~exiting.unsqueeze(1)  # an exiting row keeps what it has
        self.record(commit, tokens, s, revoked)
        if self.audit is not None:
            kl, audited = self.audit
            r.audit_kl = r.audit_kl + (kl * (commit & audited)).sum(1).double()
            r.audit_n = r.audit_n + (commit & audited).sum(1)
        region = torch.where(commit, tokens, region.masked_fill(revoked, mask_id))
        if cfg.stop_on_eos and self.model.eos_ids:
            still = region == mask_id
            region = region.masked_fill(
                fill_after_eos(region, still, r.answer, self.eos), self.model.eos_ids[0]
            )
        r.ids[:, r.width :] = region
        r.block_step = r.block_step + 1
        r.nfe = r.nfe + 1
        finished = exiting | ~(region == mask_id).any(1)
        # The one read of the step: a small flag vector (1: finished, 2: committed nothing).
        flags = (finished.to(torch.int8) + 2 * stalled.to(torch.int8)).tolist()
        if any(f & 2 for f in flags):
            raise RuntimeError(f"decoder {self.decoder.name} committed nothing for a row")
        return [j for j, f in enumerate(flags) if f]

    def forward(
        self, window: torch.Tensor, uniform: torch.Tensor | None
    ) -> tuple[PositionStats, torch.Tensor | None]:
        """This pass's statistics over the region [R, G], and its region logits [R, G, V] when
        the decoder looks back (else None). Without a cache every row computes every position;
        with one, `plan_query` says which positions each row recomputes and which rows refresh.
        The mask id is never chosen: a committed mask would stay masked, the loop not end."""
        r, g, mask_id, temperature = (
            self.rows,
            self.gen_length,
            self.model.mask_id,
            self.cfg.temperature,
        )
        if not self.cached:
            columns = r.width + torch.arange(g, device=self.device).expand(len(r), g)
            logits = self.model.logits(r.ids, r.attn, columns)
            r.computed = r.computed + r.attn.sum(1)
            s = position_stats(logits, temperature, None, mask_id, uniform)
            return s, logits if (self.revoking or self.vocab) else None
        plan = plan_query(
            self.cfg.cache,
            window,
            r.answer if self.cfg.gamma is not None else None,
            self.decoder.scores_region,
            r.block_index * self.cfg.block,
            r.nfe,
            r.refreshed_block,
            r.refreshed_nfe,
            r.block_index,
        )
        return self.cached_pass(plan, uniform)

    def cached_pass(
        self, plan: QueryPlan, uniform: torch.Tensor | None
    ) -> tuple[PositionStats, torch.Tensor | None]:
        """`forward` with the cache: the refreshing rows in one full pass (their cache
        rebuilt), the others in one pass over their planned positions against their cache."""
        r, g, mask_id = self.rows, self.gen_length, self.model.mask_id
        offsets = mask_columns(plan.compute)
        stats = blank_stats(len(r), g, mask_id, self.device)
        logits = None
        if self.revoking or self.vocab:
            logits = torch.zeros(len(r), g, self.model.vocab_size, device=self.device)
        self.audit = None
        if self.cfg.cache.audit:
            zeros = torch.zeros(len(r), g, device=self.device)
            self.audit = (zeros, zeros.bool())
        for refresh in (True, False):
            rows = (plan.refresh == refresh).nonzero().squeeze(1)
            if len(rows) == 0:
                continue
            cols = offsets.index_select(0, rows)
            cache = None if refresh else r.cache.select(rows)
            part, fresh = self.model.cached_forward(
                r.ids.index_select(0, rows), r.attn.index_select(0, rows), r.width + cols, cache
            )
            u = None if uniform is None else uniform.index_select(0, rows).gather(1, cols)
            scatter_stats(
                stats, rows, cols, position_stats(part, self.cfg.temperature, None, mask_id, u)
            )
            if logits is not None:
                logits[rows.unsqueeze(1), cols] = part
            if self.audit is not None and not refresh:
                self.audit_pass(rows, cols, part)
            if refresh:
                r.cache = fresh.blank(len(r)) if r.cache is None else r.cache
                r.cache.write(rows, fresh)
        full = r.attn.sum(1)
        r.computed = r.computed + torch.where(plan.refresh, full, plan.compute.sum(1))
        r.refreshes = r.refreshes + plan.refresh.long()
        r.refreshed_block = torch.where(plan.refresh, r.block_index, r.refreshed_block)
        r.refreshed_nfe = torch.where(plan.refresh, r.nfe, r.refreshed_nfe)
        return stats, logits

    def audit_pass(self, rows: torch.Tensor, cols: torch.Tensor, cached: torch.Tensor) -> None:
        """cache.audit: the same rows' full pass at `cols`; KL(full || cached) per position into
        `self.audit` (not counted as a pass, not used for decoding)."""
        r = self.rows
        full = self.model.logits(
            r.ids.index_select(0, rows), r.attn.index_select(0, rows), r.width + cols
        )
        logp_full = torch.log_softmax(full.float(), -1)
        logp_cached = torch.log_softmax(cached.float(), -1)
        kl = (logp_full.exp() * (logp_full - logp_cached)).sum(-1).clamp(min=0)
        where = (rows.unsqueeze(1), cols)
        self.audit[0][where] = kl
        self.audit[1][where] = True

    def look_back(
        self,
        view: StepView,
        logits: torch.Tensor | None,
        region: torch.Tensor,
        masked: torch.Tensor,
    ) -> torch.Tensor:
        """Fill the view's fields for decoders that compare passes or revoke; returns the
        positions the decoder revokes (bool [R, G], within the revocation limit)."""
        r = self.rows
        if logits is None:
            return torch.zeros_like(masked)
        logp = torch.log_softmax(logits.float(), dim=-1)
        if self.vocab:
            kl = (logp.exp() * (logp - r.previous_logp)).sum(-1)
            view.kl_previous = kl.masked_fill(~r.has_previous.unsqueeze(1), float("inf"))
            r.previous_logp, r.has_previous = logp, torch.ones_like(r.has_previous)
        if not self.revoking:
            return torch.zeros_like(masked)
        current = logp.gather(2, region.unsqueeze(-1)).squeeze(-1)
        view.region, view.fresh = region, r.fresh
        view.current_logprob = current.masked_fill(masked, float("-inf"))
        view.revocable = (r.commit_step >= 0) & ~masked & (r.revocations < self.max_revocations)
        return self.decoder.revoke(view) & view.revocable

    def record(
        self, commit: torch.Tensor, tokens: torch.Tensor, s: PositionStats, revoked: torch.Tensor
    ) -> None:
        """Write this step's commits and revocations into the rows' trajectory (on the device)."""
        r = self.rows
        r.commit_step = torch.where(revoked, -1, r.commit_step)
        r.revoke_step = torch.where(revoked, r.nfe.unsqueeze(1), r.revoke_step)
        r.revocations = r.revocations + revoked.long()
        r.fresh = commit
        r.commit_step = torch.where(commit, r.nfe.unsqueeze(1), r.commit_step)
        r.commit_token = torch.where(commit, tokens, r.commit_token)
        r.commit_logprob = torch.where(commit, s.logprob, r.commit_logprob)
        r.commit_entropy = torch.where(commit, s.entropy, r.commit_entropy)

    def retire(self, done: list[int]) -> None:
        """Copy the finished rows `done` to the host in one piece, report each, drop them."""
        r, g = self.rows, self.gen_length
        pick = torch.tensor(done, dtype=torch.long, device=self.device)
        parts = [r.ids[:, r.width :], r.commit_step, r.commit_token]
        parts += [r.commit_logprob, r.commit_entropy, r.nfe.unsqueeze(1), r.exit_step.unsqueeze(1)]
        parts += [r.revoke_step, r.computed.unsqueeze(1), r.refreshes.unsqueeze(1)]
        parts += [r.audit_kl.unsqueeze(1), r.audit_n.unsqueeze(1)]
        host = torch.cat([p.index_select(0, pick).double() for p in parts], dim=1).tolist()
        now = time.perf_counter()
        for j, row in zip(done, host):
            region, steps, nfe, exit_step = trajectory(row, g)
            computed, refreshes = int(row[6 * g + 2]), int(row[6 * g + 3])
            audited = int(row[6 * g + 5])
            cache_kl = row[6 * g + 4] / audited if audited else None
            gen = Generation(
                region, nfe, steps, exit_step, now - r.started[j], computed, refreshes, cache_kl
            )
            self.finish(r.index[j], gen)
        gone = set(done)
        left = [j for j in range(len(r)) if j not in gone]
        self.rows = r.keep(left) if left else None


@torch.no_grad()
def generate(
    model: MaskedLM,
    canvases: list[Canvas],
    decoder: Decoder,
    cfg: SamplerConfig,
    generator: torch.Generator | None = None,
    on_done: Callable[[int, Generation], None] | None = None,
    batch_size: int | None = None,
    streams: list[int] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> list[Generation]:
    """Fill the masked region positions of every canvas, one forward pass per step.

    batch_size: rows in flight (None: every canvas at once). Finished rows leave the batch and
    queued canvases take their places (continuous batching); `on_done(index, generation)` is
    called as each canvas finishes (to log it at once).
    streams: one random stream id per canvas (nclb.sampler.streams.stream_id(seed, example id)):
    a canvas's samples then depend on its stream only. Without them, stream i is derived from
    one number drawn from `generator` (or torch's global generator) and i.
    on_step(rows): called at each step, before its forward pass, with the rows in flight (a
    timing or occupancy hook; with a cache the pass may be two model calls, the refreshing rows
    and the others, and it is still one step).
    """
    if streams is None:
        streams = default_streams(len(canvases), generator)
    if len(streams) != len(canvases):
        raise ValueError(f"{len(streams)} streams for {len(canvases)} canvases")
    size = len(canvases) if batch_size is None else batch_size
    if size < 1:
        Integer(min=1).check("batch_size", batch_size)
    state = Decoding(model, canvases, decoder, cfg, size, streams, on_done, on_step)
    state.refill()
    while state.rows is not None:
        done = state.step()
        if done:
            state.retire(done)
            state.refill()
    return state.gens
