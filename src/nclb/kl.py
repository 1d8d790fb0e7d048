"""KL between multi-token and single-token decoding (the paper's Table 6), per example.

Estimator. For a sample x drawn by the multi-token sampler q, with the order in which it
committed positions (steps t = 1..T, committing the set S_t from state s_t):

    log q_multi(x)  = sum_t sum_{j in S_t} log p(x_j | s_t)                 (product of marginals)
    log p_single(x) = sum_t sum_{m=1..|S_t|} log p(x_{j_m} | s_t, x_{j_1..j_{m-1}})

where j_1, j_2, ... orders S_t (`kl_order`: entropy = lowest entropy first, the order a k=1
sampler would take them; left_to_right = by position). p_single is the one-token-at-a-time
sampler that follows the multi-token sampler's order; both see the same states at step
boundaries, so the order cancels from the ratio and mean_x[log q_multi(x) - log p_single(x)]
over the sampler's own samples is an unbiased estimate of KL(q_multi || p_single). It needs
samples (temperature > 0); both terms use the sampling temperature. Steps of one position
contribute exactly zero.

Exact per-step KL: for a step that commits two positions i (first) and j from state s,
KL(p(x_i|s) p(x_j|s) || p(x_i|s) p(x_j|s, x_i)) = E_{v ~ p(x_i|s)} KL(p(x_j|s) || p(x_j|s, x_i=v)),
computed by enumerating the values v of x_i in order of probability until their mass reaches
`kl_pair_mass` or `kl_pair_max` values (one forward pass each; the partial sum is a lower bound
and its covered mass is logged). Summed over the pair steps of a sample, it is a lower-variance
estimate of the same KL when every multi-position step commits two positions (k=2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nclb.errors import UserError
from nclb.likelihood import region_apply
from nclb.models.base import MaskedLM
from nclb.sampler.loop import Generation, SamplerConfig, StepRecord
from nclb.tasks.base import Canvas

KL_ORDERS = ("entropy", "left_to_right")


@dataclass
class KLOptions:
    """The `metrics:` block of configs/config.yaml."""

    kl: bool = False
    kl_order: str = "entropy"
    kl_pair_max: int = 32
    kl_pair_mass: float = 0.9999
    kl_batch: int = 64


def kl_options(metrics: dict[str, Any] | None, sampler: SamplerConfig) -> KLOptions:
    """Validate the `metrics` config against the sampler settings (one-line errors)."""
    metrics = dict(metrics or {})
    known = set(KLOptions.__dataclass_fields__)
    unknown = sorted(set(metrics) - known)
    if unknown:
        raise UserError(f"metrics.{unknown[0]} is not a metrics key; known: {sorted(known)}")
    opts = KLOptions(**metrics)
    if not isinstance(opts.kl, bool):
        raise UserError(f"metrics.kl={opts.kl!r} must be true or false")
    if opts.kl_order not in KL_ORDERS:
        raise UserError(f"metrics.kl_order={opts.kl_order!r} must be one of {list(KL_ORDERS)}")
    if not (isinstance(opts.kl_pair_max, int) and opts.kl_pair_max >= 0):
        raise UserError(f"metrics.kl_pair_max={opts.kl_pair_max!r} must be an integer >= 0")
    if not 0 < float(opts.kl_pair_mass) <= 1:
        raise UserError(f"metrics.kl_pair_mass={opts.kl_pair_mass!r} must be in (0, 1]")
    if not (isinstance(opts.kl_batch, int) and opts.kl_batch >= 1):
        raise UserError(f"metrics.kl_batch={opts.kl_batch!r} must be an integer >= 1")
    if opts.kl:
        if sampler.temperature <= 0:
            raise UserError(
                "metrics.kl=true needs samples from the sampler: set temperature=1.0 (> 0)"
            )
        if sampler.gamma is not None:
            raise UserError("metrics.kl=true cannot score early-exit commits; set gamma=null")
        if sampler.stop_on_eos:
            raise UserError("metrics.kl=true cannot score eos filling; set stop_on_eos=false")
    return opts


def step_order(step: StepRecord, how: str) -> list[tuple[int, int]]:
    """(position, token) pairs of one step in the order p_single commits them."""
    pairs = list(zip(step.positions, step.tokens, step.entropies, strict=True))
    if how == "entropy":
        pairs.sort(key=lambda p: (p[2], p[0]))
    else:
        pairs.sort(key=lambda p: p[0])
    return [(pos, tok) for pos, tok, _ in pairs]


def kl_record(
    model: MaskedLM,
    canvas: Canvas,
    gen: Generation,
    temperature: float = 1.0,
    opts: KLOptions | None = None,
) -> dict[str, Any]:
    """The KL terms of one sample (see the module docstring): log_q, log_p_single, their
    difference `estimate`, and the exact KL of each two-position step (`pair_kl`)."""
    opts = opts or KLOptions(kl=True)
    if any(s.early_exit for s in gen.steps):
        raise UserError("metrics.kl=true cannot score early-exit commits; set gamma=null")
    state = list(canvas.region)
    states: list[list[int]] = []
    targets: list[list[tuple[int, int]]] = []  # what each state scores
    kinds: list[tuple[str, int]] = []  # ("q", step) scores q terms; ("p", step) a p_single term
    pair_steps: list[tuple[int, int, int, list[int]]] = []  # (step, i, j, state)
    for t, step in enumerate(gen.steps):
        ordered = step_order(step, opts.kl_order)
        states.append(list(state))
        targets.append(ordered)
        kinds.append(("q", t))
        if len(ordered) == 2:
            pair_steps.append((t, ordered[0][0], ordered[1][0], list(state)))
        partial = list(state)
        for m in range(1, len(ordered)):
            partial[ordered[m - 1][0]] = ordered[m - 1][1]
            states.append(list(partial))
            targets.append([ordered[m]])
            kinds.append(("p", t))
        for pos, tok in ordered:
            state[pos] = tok
    pair_index = {t: (i, j) for t, i, j, _ in pair_steps}

    def reduce(r: int, logp: torch.Tensor) -> dict[str, Any]:
        pos = torch.tensor([p for p, _ in targets[r]], device=logp.device)
        tok = torch.tensor([k for _, k in targets[r]], device=logp.device)
        out: dict[str, Any] = {"terms": logp[pos, tok].double().cpu().tolist()}
        kind, t = kinds[r]
        if kind == "q" and t in pair_index:
            i, j = pair_index[t]
            out["pi"] = logp[i].double().cpu()
            out["pj"] = logp[j].double().cpu()
        return out

    prompts = [canvas.prompt] * len(states)
    scored = region_apply(model, prompts, states, reduce, opts.kl_batch, temperature)
    log_q = log_p = 0.0
    q_steps: dict[int, dict[str, Any]] = {}
    for (kind, t), out in zip(kinds, scored, strict=True):
        if kind == "q":
            log_q += sum(out["terms"])
            log_p += out["terms"][0]
            q_steps[t] = out
        else:
            log_p += out["terms"][0]
    pair_kls, covered = pair_step_kls(model, canvas.prompt, pair_steps, q_steps, temperature, opts)
    multi = sum(len(s.positions) > 1 for s in gen.steps)
    return {
        "log_q": log_q,
        "log_p_single": log_p,
        "estimate": log_q - log_p,
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
    q_steps: dict[int, dict[str, Any]],
    temperature: float,
    opts: KLOptions,
) -> tuple[list[float], list[float]]:
    """Exact KL of each two-position step, and the probability mass of x_i it enumerated."""
    if not pair_steps or opts.kl_pair_max == 0:
        return [], []
    states, owners, weights = [], [], []
    for n, (t, i, _j, state) in enumerate(pair_steps):
        pi = q_steps[t]["pi"].exp()
        probs, values = pi.sort(descending=True)
        mass = probs.cumsum(0)
        count = int((mass < opts.kl_pair_mass).sum()) + 1
        count = min(count, opts.kl_pair_max, len(values))
        for v, w in zip(values[:count].tolist(), probs[:count].tolist(), strict=True):
            filled = list(state)
            filled[i] = v
            states.append(filled)
            owners.append(n)
            weights.append(w)
    js = [pair_steps[owners[r]][2] for r in range(len(states))]

    def reduce(r: int, logp: torch.Tensor) -> torch.Tensor:
        return logp[js[r]].double().cpu()

    cond = region_apply(model, [prompt] * len(states), states, reduce, opts.kl_batch, temperature)
    kls = [0.0] * len(pair_steps)
    covered = [0.0] * len(pair_steps)
    for r, logp_cond in enumerate(cond):
        n = owners[r]
        pj = q_steps[pair_steps[n][0]]["pj"]
        term = (pj.exp() * (pj - logp_cond)).nansum().item()
        kls[n] += weights[r] * term
        covered[n] += weights[r]
    return kls, covered


def kl_summary(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean KL estimate over the records that carry one (None if none do), with its standard
    error, and the mean exact per-step KL of the two-position steps."""
    rows = [r["kl"] for r in records if isinstance(r.get("kl"), dict)]
    if not rows:
        return None
    est = [r["estimate"] for r in rows]
    n = len(est)
    mean = sum(est) / n
    var = sum((e - mean) ** 2 for e in est) / (n - 1) if n > 1 else float("nan")
    pairs = [k for r in rows for k in r["pair_kl"]]
    return {
        "n": n,
        "estimate": mean,
        "stderr": math.sqrt(var / n) if n > 1 else None,
        "mean_log_q": sum(r["log_q"] for r in rows) / n,
        "mean_log_p_single": sum(r["log_p_single"] for r in rows) / n,
        "mean_steps": sum(r["steps"] for r in rows) / n,
        "mean_multi_steps": sum(r["multi_steps"] for r in rows) / n,
        "pair_kl_sum": sum(r["pair_kl_sum"] for r in rows) / n,
        "pair_kl_per_step": sum(pairs) / len(pairs) if pairs else None,
        "pair_steps": len(pairs),
        "estimator": "mean over samples of log q_multi(x) - log p_single(x) (nclb.kl)",
    }
