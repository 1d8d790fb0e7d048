"""EB's budget test, sum - max of the entropy-ordered prefix <= lam, read without cancellation."""

from __future__ import annotations

import torch

from nclb.sampler import build_decoder
from nclb.sampler.policy import StepView
from nclb.sampler.stats import position_stats


def view_of(entropy: torch.Tensor, candidates: torch.Tensor | None = None) -> StepView:
    """A step view [B, G] with the given entropies (all positions candidates unless given)."""
    stats = position_stats(torch.zeros(*entropy.shape, 3))
    stats.entropy = entropy
    cand = torch.ones_like(entropy, dtype=torch.bool) if candidates is None else candidates
    return StepView(cand, stats, torch.zeros(entropy.shape[0], dtype=torch.long), cand.sum(1))


def test_a_tiny_lowest_entropy_does_not_cancel_away():
    # float32: (1.3e-9 + 0.381) - 0.381 == 0, which let budget 0 take the second position
    view = view_of(torch.tensor([[0.381, 1.3e-9, 2.0]]))
    assert build_decoder("eb", lam=0.0).select(view).tolist() == [[False, True, False]]
    assert build_decoder("eb", lam=1e-9).select(view).tolist() == [[False, True, False]]
    assert build_decoder("eb", lam=2e-9).select(view).tolist() == [[True, True, False]]


def test_budget_zero_commits_what_k1_commits_on_random_entropies():
    gen = torch.Generator().manual_seed(0)
    rows, width = 2000, 12
    spread = torch.rand(rows, width, generator=gen) * 3.0
    # about a third of the entries near zero: 1e-12 .. 1e-3 nats
    tiny = 10 ** (-3 - 9 * torch.rand(rows, width, generator=gen))
    entropy = torch.where(torch.rand(rows, width, generator=gen) < 0.35, tiny, spread)
    candidates = torch.rand(rows, width, generator=gen) < 0.8
    candidates[:, 0] |= ~candidates.any(1)  # every row has a candidate, as the loop guarantees
    view = view_of(entropy.float(), candidates)
    eb = build_decoder("eb", lam=0.0).select(view)
    k1 = build_decoder("ktoken", k=1, order="entropy").select(view)
    assert (eb.sum(1) == 1).all()
    assert torch.equal(eb, k1)


def test_budget_zero_adds_to_exactly_certain_positions():
    # The rule itself, not rounding: sum - max of {0, 0, 0.7} is exactly 0 <= 0. Committing
    # deterministic positions beside one other position is exact, as k=1 is.
    view = view_of(torch.tensor([[0.0, 0.7, 0.0, 0.9]]))
    assert build_decoder("eb", lam=0.0).select(view).tolist() == [[True, True, True, False]]


def test_non_candidates_are_never_committed():
    entropy = torch.tensor([[0.1, 0.0, 0.2, 0.05]])
    candidates = torch.tensor([[True, False, True, True]])
    picked = build_decoder("eb", lam=1e9).select(view_of(entropy, candidates))
    assert picked.tolist() == [[True, False, True, True]]
