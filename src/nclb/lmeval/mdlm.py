"""log p(continuation | context) under a masked diffusion LM, estimated by Monte Carlo.

A masked LM has no left-to-right factorisation to read a log-likelihood from. The estimate here
is the MDLM evidence lower bound in the form LLaDA evaluates with (its paper's conditional
likelihood estimate): draw a number of masked tokens l uniformly from 1..L (L = continuation
length), mask l continuation positions chosen uniformly, score the masked tokens in one forward
pass, and weight their summed log-probabilities by L / l. The mean over `samples` draws is an
unbiased estimate of the bound, which is <= log p(continuation | context) (exact for L = 1).
`is_greedy` is a one-pass check: every continuation token is the argmax at its position with
the whole continuation masked. Each request costs `samples` + 1 forward passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nclb.models.base import MaskedLM
from nclb.models.scoring import region_apply


def masked_draws(
    length: int, samples: int, generator: torch.Generator
) -> list[tuple[list[int], float]]:
    """`samples` draws of (masked positions, weight L / l) for a continuation of `length`."""
    draws = []
    for _ in range(samples):
        count = int(torch.randint(1, length + 1, (1,), generator=generator))
        positions = torch.randperm(length, generator=generator)[:count].sort().values.tolist()
        draws.append((positions, length / count))
    return draws


def mdlm_loglikelihood(
    model: MaskedLM,
    prompts: Sequence[list[int]],
    targets: Sequence[list[int]],
    samples: int,
    generator: torch.Generator,
    batch_size: int = 32,
) -> list[tuple[float, bool]]:
    """(estimated log p(target | prompt), is_greedy) for each row; an empty target is (0, True)."""
    rows_prompt, rows_state, rows_owner, rows_positions, rows_weight = [], [], [], [], []
    for row, (prompt, target) in enumerate(zip(prompts, targets, strict=True)):
        if not target:
            continue
        # weight None marks the all-masked state of the greedy check
        draws = masked_draws(len(target), samples, generator) + [(list(range(len(target))), None)]
        for positions, weight in draws:
            state = list(target)
            for p in positions:
                state[p] = model.mask_id
            rows_prompt.append(prompt)
            rows_state.append(state)
            rows_owner.append(row)
            rows_positions.append(positions)
            rows_weight.append(weight)

    def reduce(i: int, logp: torch.Tensor) -> float | bool:
        pos = torch.tensor(rows_positions[i], device=logp.device)
        wanted = torch.tensor(
            [targets[rows_owner[i]][p] for p in rows_positions[i]], device=logp.device
        )
        if rows_weight[i] is None:
            return bool((logp[pos].argmax(-1) == wanted).all())
        return rows_weight[i] * float(logp[pos, wanted].double().sum())

    scored = region_apply(model, rows_prompt, rows_state, reduce, batch_size)
    totals = [0.0] * len(prompts)
    greedy = [True] * len(prompts)
    for i, value in enumerate(scored):
        owner = rows_owner[i]
        if rows_weight[i] is None:
            greedy[owner] = bool(value)
        else:
            totals[owner] += float(value) / samples
    return list(zip(totals, greedy))
