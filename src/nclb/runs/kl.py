"""KL between multi-token and single-token decoding (the paper's Table 6), per example.

For a sample x drawn by the multi-token sampler q, with the order in which it committed
positions (steps t = 1..T, committing the set S_t from state s_t, ordered j_1, j_2, ... by
`kl_order`: entropy = lowest entropy first, the order a k=1 sampler would take them;
left_to_right = by position):

    log q_multi(x)  = sum_t sum_{j in S_t} log q(x_j | s_t)                 (product of marginals)
    log p_single(x) = sum_t sum_{m=1..|S_t|} log p(x_{j_m} | s_t, x_{j_1..j_{m-1}})

p_single is the one-token-at-a-time sampler that follows the multi-token sampler's order; both
see the same states at step boundaries. Both use the sampling temperature and, like the sampler,
never draw the mask token (its mass is removed and the rest renormalised). Two estimators of
KL(q_multi || p_single) come from the same scoring passes (one per step at s_t, one per
committed position beyond the first of a step); docs/kl.md has the derivation:

- sample: log q_multi(x) - log p_single(x), unbiased but heavy-tailed.
- rb (Rao-Blackwellized): sum_t sum_{m >= 2} KL(q(. | s_t) at j_m || p(. | s_t, x_{j_<m}) at j_m),
  the expectation of each term of `sample` over the token x_{j_m}, which the sampler draws
  independently of x_{j_<m}. Unbiased for the same KL, never negative, lower variance.

Both need samples (temperature > 0) and a decoder whose choice of positions does not depend on
the sampled tokens (otherwise q_multi is not a product of marginals). Steps of one position
contribute exactly zero to both.

Exact per-step KL: for a step that commits two positions i (first) and j from state s,
KL(q(x_i|s) q(x_j|s) || q(x_i|s) p(x_j|s, x_i)) = E_{v ~ q(x_i|s)} KL(q(x_j|s) || p(x_j|s, x_i=v)),
computed by enumerating the values v of x_i in order of probability until their mass reaches
`kl_pair_mass` or `kl_pair_max` values (one extra forward pass each; the partial sum is a lower
bound and its covered mass is logged).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nclb.errors import UserError
from nclb.models.base import MaskedLM
from nclb.models.scoring import region_apply
from nclb.sampler.loop import Generation, SamplerConfig, StepRecord
from nclb.sampler.policy import Decoder
from nclb.schema import Flag, Integer, Number, OneOf, field_rule, from_mapping, setting
from nclb.types import Canvas

KL_ORDERS = ("entropy", "left_to_right")
KL_ESTIMATORS = ("rb", "sample")


@dataclass
class KLOptions:
    """The `metrics:` block of configs/config.yaml."""

    kl: bool = setting(False, Flag())
    kl_estimator: str = setting("rb", OneOf(options=KL_ESTIMATORS))
    kl_order: str = setting("entropy", OneOf(options=KL_ORDERS))
    kl_pair_max: int = setting(32, Integer(min=0))
    kl_pair_mass: float = setting(0.9999, Number(max=1, open_min=True))
    kl_batch: int = setting(64, Integer(min=1))


def kl_options(
    metrics: dict[str, Any] | None, sampler: SamplerConfig, decoder: Decoder | None = None
) -> KLOptions:
    """Validate the `metrics` config against the sampler (and decoder, when given) settings;
    one-line errors."""
    opts = from_mapping(KLOptions, metrics, "metrics.")
    if opts.kl:
        if sampler.temperature <= 0:
            raise UserError(
                "metrics.kl=true needs samples from the sampler: set temperature=1.0 (> 0)"
            )
        if sampler.gamma is not None:
            raise UserError("metrics.kl=true cannot score early-exit commits; set gamma=null")
        if sampler.stop_on_eos:
            raise UserError("metrics.kl=true cannot score eos filling; set stop_on_eos=false")
        why = decoder.kl_unsupported() if decoder is not None else None
        if why:
            raise UserError(
                f"metrics.kl=true cannot score this decoder: {why}; use a decoder that "
                "declares itself re-scorable (docs/kl.md lists them)"
            )
    return opts


def step_order(step: StepRecord, how: str) -> list[tuple[int, int]]:
    """(position, token) pairs of one step in the order p_single commits them."""
    pairs = list(zip(step.positions, step.tokens, step.entropies, strict=True))
    if how == "entropy":
        pairs.sort(key=lambda p: (p[2], p[0]))
    else:
        pairs.sort(key=lambda p: p[0])
    return [(pos, tok) for pos, tok, _ in pairs]


def sampler_logprobs(logp: torch.Tensor, forbid: int) -> torch.Tensor:
    """Log-probs [..., V] as the sampler draws from them: the `forbid` (mask) token's mass
    removed and the rest renormalised (nclb.sampler.stats.position_stats redraws a mask)."""
    if not 0 <= forbid < logp.shape[-1]:
        return logp
    out = logp.index_fill(-1, torch.tensor([forbid], device=logp.device), float("-inf"))
    return out - out.logsumexp(-1, keepdim=True)


def exact_kl(logq: torch.Tensor, logp: torch.Tensor) -> float:
    """KL(q || p) in nats from log-probs over one vocabulary [V] (float64; terms where q = 0
    are 0; clamped at 0 against rounding)."""
    logq, logp = logq.double(), logp.double()
    q = logq.exp()
    terms = torch.where(q > 0, q * (logq - logp), torch.zeros_like(q))
    return max(0.0, float(terms.sum()))


def kl_record(
    model: MaskedLM,
    canvas: Canvas,
    gen: Generation,
    temperature: float = 1.0,
    opts: KLOptions | None = None,
) -> dict[str, Any]:
    """The KL terms of one sample (see the module docstring): log_q, log_p_single, both
    estimates (`sample`, `rb`), `estimate` = the one `opts.kl_estimator` names, and the exact
    KL of each two-position step (`pair_kl`)."""
    opts = opts or KLOptions(kl=True)
    if any(s.early_exit for s in gen.steps):
        raise UserError("metrics.kl=true cannot score early-exit commits; set gamma=null")
    committed = [pos for step in gen.steps for pos in step.positions]
    if len(committed) != len(set(committed)):
        raise UserError("metrics.kl=true cannot score a decoder that takes commits back")
    plans: list[tuple[list[int], list[tuple[int, int]]]] = []  # (state s_t, ordered S_t)
    state = list(canvas.region)
    for step in gen.steps:
        ordered = step_order(step, opts.kl_order)
        plans.append((list(state), ordered))
        for pos, tok in ordered:
            state[pos] = tok

    def q_reduce(t: int, logp: torch.Tensor) -> dict[str, Any]:
        ordered = plans[t][1]
        pos = torch.tensor([p for p, _ in ordered], device=logp.device)
        tok = torch.tensor([k for _, k in ordered], device=logp.device)
        rows = sampler_logprobs(logp[pos], model.mask_id)  # q(. | s_t) at each j_m
        terms = rows.gather(1, tok.unsqueeze(1)).squeeze(1).double().cpu().tolist()
        return {"terms": terms, "rows": rows if len(ordered) > 1 else None}

    prompt = canvas.prompt
    q_steps = region_apply(
        model, [prompt] * len(plans), [s for s, _ in plans], q_reduce, opts.kl_batch, temperature
    )
    # p_single: one pass per committed position beyond the first of its step
    p_states, p_refs = [], []
    for t, (start, ordered) in enumerate(plans):
        partial = list(start)
        for m in range(1, len(ordered)):
            partial[ordered[m - 1][0]] = ordered[m - 1][1]
            p_states.append(list(partial))
            p_refs.append((t, m))

    def p_reduce(r: int, logp: torch.Tensor) -> tuple[float, float]:
        t, m = p_refs[r]
        pos, tok = plans[t][1][m]
        row = sampler_logprobs(logp[pos], model.mask_id)
        return float(row[tok]), exact_kl(q_steps[t]["rows"][m], row)

    p_terms = region_apply(
        model, [prompt] * len(p_states), p_states, p_reduce, opts.kl_batch, temperature
    )
    log_q = sum(sum(out["terms"]) for out in q_steps)
    log_p = sum(out["terms"][0] for out in q_steps) + sum(lp for lp, _ in p_terms)
    rb = float(sum(k for _, k in p_terms))
    pair_steps = [(t, o[0][0], o[1][0], s) for t, (s, o) in enumerate(plans) if len(o) == 2]
    pair_kls, covered = pair_step_kls(model, prompt, pair_steps, q_steps, temperature, opts)
    multi = sum(len(s.positions) > 1 for s in gen.steps)
    sample = log_q - log_p
    return {
        "estimator": opts.kl_estimator,
        "estimate": rb if opts.kl_estimator == "rb" else sample,
        "rb": rb,
        "sample": sample,
        "log_q": log_q,
        "log_p_single": log_p,
        "steps": len(gen.steps),
        "multi_steps": multi,
        "pair_steps": len(pair_kls),
        "pair_kl": pair_kls,
        "pair_kl_sum": float(sum(pair_kls)),
        "pair_mass": covered,
    }


def pair_step_kls(
    model: MaskedLM,
    prompt: list[int],
    pair_steps: list[tuple[int, int, int, list[int]]],
    q_steps: list[dict[str, Any]],
    temperature: float,
    opts: KLOptions,
) -> tuple[list[float], list[float]]:
    """Exact KL of each two-position step (t, i, j, state), and the mass of x_i it enumerated."""
    if not pair_steps or opts.kl_pair_max == 0:
        return [], []
    states, owners, weights = [], [], []
    for n, (t, i, _j, state) in enumerate(pair_steps):
        probs, values = q_steps[t]["rows"][0].double().exp().cpu().sort(descending=True)
        mass = probs.cumsum(0)
        count = int((mass < opts.kl_pair_mass).sum()) + 1
        count = min(count, opts.kl_pair_max, int((probs > 0).sum()))
        for v, w in zip(values[:count].tolist(), probs[:count].tolist(), strict=True):
            filled = list(state)
            filled[i] = v
            states.append(filled)
            owners.append(n)
            weights.append(w)
    js = [pair_steps[owners[r]][2] for r in range(len(states))]

    def reduce(r: int, logp: torch.Tensor) -> float:
        qj = q_steps[pair_steps[owners[r]][0]]["rows"][1]
        return exact_kl(qj, sampler_logprobs(logp[js[r]], model.mask_id))

    cond = region_apply(model, [prompt] * len(states), states, reduce, opts.kl_batch, temperature)
    kls = [0.0] * len(pair_steps)
    covered = [0.0] * len(pair_steps)
    for r, term in enumerate(cond):
        kls[owners[r]] += weights[r] * term
        covered[owners[r]] += weights[r]
    return kls, covered


def mean_stderr(values: list[float]) -> tuple[float, float | None]:
    """The mean and its standard error (None for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def kl_summary(
    records: list[dict[str, Any]], estimator: str | None = None
) -> dict[str, Any] | None:
    """Mean KL over the records that carry one (None if none do), by both estimators with their
    standard errors; `estimate`/`stderr` are the `estimator`'s (default: the one the records
    name). `rb` is None when some record predates it (logged with an older nclb)."""
    rows = [r["kl"] for r in records if isinstance(r.get("kl"), dict)]
    if not rows:
        return None
    # records written before the rb estimator hold the sample estimate as `estimate` only
    sample = [r["sample"] if "sample" in r else r["estimate"] for r in rows]
    rb_values = [r.get("rb") for r in rows]
    sample_mean, sample_se = mean_stderr(sample)
    rb_mean, rb_se = (None, None)
    if all(v is not None for v in rb_values):
        rb_mean, rb_se = mean_stderr(rb_values)
    estimator = estimator or rows[-1].get("estimator", "sample")
    field_rule(KLOptions, "kl_estimator").check("metrics.kl_estimator", estimator)
    n = len(rows)
    pairs = [k for r in rows for k in r["pair_kl"]]
    chosen = (rb_mean, rb_se) if estimator == "rb" else (sample_mean, sample_se)
    return {
        "n": n,
        "estimator": estimator,
        "estimate": chosen[0],
        "stderr": chosen[1],
        "rb": rb_mean,
        "rb_stderr": rb_se,
        "sample": sample_mean,
        "sample_stderr": sample_se,
        "mean_log_q": sum(r["log_q"] for r in rows) / n,
        "mean_log_p_single": sum(r["log_p_single"] for r in rows) / n,
        "mean_steps": sum(r["steps"] for r in rows) / n,
        "mean_multi_steps": sum(r["multi_steps"] for r in rows) / n,
        "pair_kl_sum": sum(r["pair_kl_sum"] for r in rows) / n,
        "pair_kl_per_step": sum(pairs) / len(pairs) if pairs else None,
        "pair_steps": len(pairs),
        "estimators": {
            "rb": "mean over samples of the summed exact per-position KLs (nclb.runs.kl, docs/kl.md)",
            "sample": "mean over samples of log q_multi(x) - log p_single(x) (nclb.runs.kl)",
        },
    }
