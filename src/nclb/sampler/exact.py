"""Exact output distributions of a decoder on an oracle model, by enumeration.

Valid for policies whose choice of positions does not depend on the sampled tokens (entropy,
margin and left-to-right orders, MED, AR-MED): then the probability that the sampler outputs x
is the product, over its steps, of the model's conditionals of x at the committed positions.
"""

from __future__ import annotations

import itertools

import torch

from nclb.models.oracle import OracleModel
from nclb.sampler.loop import active_window
from nclb.sampler.policy import Decoder, StepView
from nclb.sampler.stats import position_stats


@torch.no_grad()
def sampler_probabilities(model: OracleModel, decoder: Decoder, block: int) -> torch.Tensor:
    """q(x) for every sequence x of the oracle (same order as model.sequences), float64."""
    targets = model.sequences
    n, length = targets.shape
    state = torch.full_like(targets, model.mask_id)
    logq = torch.zeros(n, dtype=torch.float64)
    block_index = torch.full((n,), -1, dtype=torch.long)
    block_step = torch.zeros(n, dtype=torch.long)
    block_masked = torch.zeros(n, dtype=torch.long)
    while (state == model.mask_id).any():
        masked = state == model.mask_id
        cond = model.conditionals(state)
        stats = position_stats(model.logits(state)[:, -length:])
        index, window = active_window(masked, block)
        moved = index != block_index
        block_index = index
        block_step = torch.where(moved, 0, block_step)
        block_masked = torch.where(moved, (masked & window).sum(1), block_masked)
        view = StepView(masked & window, stats, block_step, block_masked)
        chosen = decoder.select(view) & masked & window
        picked = cond.gather(2, targets.unsqueeze(-1)).squeeze(-1)
        logq += torch.where(chosen, picked.clamp(min=1e-300).log(), 0.0).sum(1)
        state = torch.where(chosen, targets, state)
        block_step += 1
    return logq.exp()


@torch.no_grad()
def state_machine_probabilities(model: OracleModel, decoder: Decoder, block: int) -> torch.Tensor:
    """q(x) for every sequence x of the oracle, for any decoder whose choices depend on the tokens
    in place, revoking decoders included, by dynamic programming over the sampler's states.

    A state is (region, revocations per position, last step's commits, the region of the
    previous pass). Each pass is made on the state as it stands: the decoder may revoke, then
    commits; the committed tokens are drawn independently from that pass's conditionals
    (temperature 1), as the loop does. For decoders that read neither block_step nor
    block_masked (every one but llada).
    """
    length, content = model.length, model.content
    limit = decoder.max_revocations if decoder.revokes else 0
    start = ((model.mask_id,) * length, (0,) * length, (False,) * length, None)
    frontier: dict[tuple, float] = {start: 1.0}
    q = torch.zeros(content**length, dtype=torch.float64)
    powers = content ** torch.arange(length - 1, -1, -1)
    while frontier:
        states = list(frontier)
        region = torch.tensor([s[0] for s in states])
        counts = torch.tensor([s[1] for s in states])
        fresh = torch.tensor([s[2] for s in states])
        masked = region == model.mask_id
        logits = model.logits(region)[:, -length:]
        logp = torch.log_softmax(logits.double(), dim=-1)
        kl_previous = torch.full(masked.shape, float("inf"))
        earlier = [i for i, s in enumerate(states) if s[3] is not None]
        if earlier:
            before = model.logits(torch.tensor([states[i][3] for i in earlier]))[:, -length:]
            old = torch.log_softmax(before.double(), dim=-1)
            kl = (logp[earlier].exp() * (logp[earlier] - old)).sum(-1)
            kl_previous[earlier] = kl.float()
        current = logp.gather(2, region.clamp(max=content - 1).unsqueeze(-1)).squeeze(-1)
        _, window = active_window(masked, block)
        view = StepView(
            candidates=masked & window,
            stats=position_stats(logits),
            block_step=torch.zeros(len(states), dtype=torch.long),
            block_masked=(masked & window).sum(1),
            region=region,
            fresh=fresh,
            revocable=~masked & (counts < limit),
            current_logprob=current.masked_fill(masked, float("-inf")).float(),
            kl_previous=kl_previous,
        )
        revoked = decoder.revoke(view) & view.revocable
        chosen = decoder.select(view) & view.candidates
        following: dict[tuple, float] = {}
        for i, state in enumerate(states):
            base = region[i].masked_fill(revoked[i], model.mask_id)
            spent = tuple((counts[i] + revoked[i].long()).tolist())
            where = chosen[i].nonzero().squeeze(1).tolist()
            for values in itertools.product(range(content), repeat=len(where)):
                p = frontier[state]
                nxt = base.clone()
                for pos, v in zip(where, values):
                    p *= float(logp[i, pos, v].exp())
                    nxt[pos] = v
                if p == 0.0:
                    continue
                if not bool((nxt == model.mask_id).any()):
                    q[int((nxt * powers).sum())] += p
                    continue
                key = (tuple(nxt.tolist()), spent, tuple(chosen[i].tolist()), state[0])
                following[key] = following.get(key, 0.0) + p
        frontier = following
    return q
