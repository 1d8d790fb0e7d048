"""Commit wide, verify with the next pass, take back what it disowns (a revoking decoder).

Each step commits the lowest-entropy candidate plus every candidate with entropy below `lam`
(MED's per-position rule with a loose budget: wide in). The next forward pass, which is made
anyway, sees those tokens in place; it re-scores each token committed at the previous step given
its new neighbours, and every one the model no longer ranks first, or gives a probability below
`keep`, is masked again (narrow out) in the same step as that pass's own new commits. The loop
bounds how often a position may be revoked, so decoding always ends.

The check reads the model's distribution at positions it can see. A model trained only on
masked positions says nothing useful there (the shipped tiny checkpoints are such models); a
model for it can be trained with `nclb train corrupt=...` (none is shipped), and the exact
oracle gives the true leave-one-out conditional.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from nclb.registry import register
from nclb.sampler.decoders.med import MED
from nclb.sampler.policy import BUDGET, Decoder, StepView
from nclb.schema import PROBABILITY, Integer, setting


@register("decoder", "verify")
@dataclass
class Verify(Decoder):
    """Wide MED-style commits (entropy < lam); revoke last step's commits that fail `keep`."""

    lam: float = setting(1.0, BUDGET, key="lam")
    keep: float = setting(0.5, PROBABILITY)
    max_revocations: int = setting(1, Integer(min=0))
    name: str = "verify"
    revokes: ClassVar[bool] = True

    def revoke(self, view: StepView) -> torch.Tensor:
        """Bool [B, G]: last step's commits this pass disowns (within the revocation limit)."""
        disowned = (view.stats.greedy != view.region) | (view.current_logprob.exp() < self.keep)
        return view.fresh & view.revocable & disowned

    def select(self, view: StepView) -> torch.Tensor:
        """The lowest-entropy candidate plus every candidate with entropy < lam."""
        return MED(lam=self.lam, rule="per_position").select(view)
