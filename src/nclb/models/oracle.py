"""An oracle MDLM: an explicit joint over short sequences, with exact conditionals.

The region is the last `length` positions of the input. For each masked region position j the
logits are log p(x_j | the unmasked region positions), computed by summing the joint over every
consistent sequence. Decoders and KL estimates are checked against it.
"""

from __future__ import annotations

import itertools

import torch

from nclb.models.kvcache import gather_columns

SYMBOLS = "abcdefghijklmnop"


class CharCodec:
    """One character per token over a fixed alphabet; unknown characters are dropped."""

    def __init__(self, alphabet: str) -> None:
        self.alphabet = alphabet
        self.index = {c: i for i, c in enumerate(alphabet)}

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of `text` that are in the alphabet."""
        return [self.index[c] for c in text if c in self.index]

    def decode(self, ids: list[int]) -> str:
        """Characters of the content ids (special ids dropped)."""
        return "".join(self.alphabet[i] for i in ids if 0 <= i < len(self.alphabet))


class OracleModel:
    """MaskedLM over a joint `probs` of shape [V] * length (content tokens 0..V-1).

    Special ids follow the content tokens: mask = V, pad = V + 1, eos = V + 2. Where the
    unmasked positions have zero probability under the joint, the conditional is uniform.
    """

    def __init__(self, probs: torch.Tensor) -> None:
        self.length = probs.dim()
        self.content = probs.shape[0]
        self.mask_id, self.pad_id = self.content, self.content + 1
        self.eos_ids = (self.content + 2,)
        self.vocab_size = self.content + 3
        self.supports_padding = True
        self.cached_forward = None  # no key/value cache: cache=none only
        self.device = torch.device("cpu")
        self.codec = CharCodec(SYMBOLS[: self.content])
        self.joint = (probs / probs.sum()).double()
        self.sequences = torch.tensor(
            list(itertools.product(range(self.content), repeat=self.length)), dtype=torch.long
        )
        onehot = torch.nn.functional.one_hot(self.sequences, self.content).double()
        self.onehot = onehot.reshape(len(self.sequences), -1)
        self.flat = self.joint.reshape(-1)

    def prompt_ids(self, text: str) -> list[int]:
        """The oracle ignores its prompt; any text maps to its characters."""
        return self.codec.encode(text)

    def conditionals(self, region: torch.Tensor) -> torch.Tensor:
        """p(x_j = v | unmasked positions of `region`) for every j: [B, length, V] (float64)."""
        masked = region == self.mask_id
        agree = (self.sequences.unsqueeze(0) == region.unsqueeze(1)) | masked.unsqueeze(1)
        weight = self.flat.unsqueeze(0) * agree.all(-1)
        marg = (weight @ self.onehot).view(len(region), self.length, self.content)
        total = marg.sum(-1, keepdim=True)
        uniform = torch.full_like(marg, 1.0 / self.content)
        return torch.where(total > 0, marg / total.clamp(min=1e-300), uniform)

    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Exact conditional log-probs at the region, one-hot elsewhere; specials get -1e9.

        A masked region position j gets log p(x_j | the unmasked region positions); an unmasked
        one gets the leave-one-out conditional log p(x_j | the other unmasked positions), the
        judgement a revoking decoder asks of a committed token.
        """
        b, n = ids.shape
        out = torch.full((b, n, self.vocab_size), -1e9, dtype=torch.float32)
        out.scatter_(2, ids.unsqueeze(-1), 0.0)
        region = ids[:, n - self.length :]
        cond = self.leave_one_out(region)
        out[:, n - self.length :, : self.content] = cond.clamp(min=1e-30).log().float()
        out[:, n - self.length :, self.content :] = -1e9
        return out if columns is None else gather_columns(out, columns)

    def leave_one_out(self, region: torch.Tensor) -> torch.Tensor:
        """p(x_j = v | the unmasked positions other than j) for every j: [B, length, V]."""
        b = len(region)
        hidden = region.unsqueeze(1).repeat(1, self.length, 1)  # copy j hides position j
        eye = torch.eye(self.length, dtype=torch.bool).unsqueeze(0).expand(b, -1, -1)
        hidden = hidden.masked_fill(eye, self.mask_id).reshape(b * self.length, self.length)
        cond = self.conditionals(hidden).view(b, self.length, self.length, self.content)
        return cond.diagonal(dim1=1, dim2=2).permute(0, 2, 1)


def palindrome_joint(content: int = 3, length: int = 6, seed: int = 0) -> torch.Tensor:
    """A joint whose support is the palindromes, with random weights: the positions are strongly
    coupled, so committing two at once from their marginals can break the pattern."""
    g = torch.Generator().manual_seed(seed)
    probs = torch.zeros([content] * length, dtype=torch.float64)
    half = (length + 1) // 2
    for left in itertools.product(range(content), repeat=half):
        seq = list(left) + list(reversed(left[: length - half]))
        probs[tuple(seq)] = torch.rand((), generator=g, dtype=torch.float64) + 0.05
    return probs


def random_joint(
    content: int = 3, length: int = 3, seed: int = 0, alpha: float = 0.3
) -> torch.Tensor:
    """A Dirichlet(alpha) joint over all sequences: full support, uneven mass."""
    g = torch.Generator().manual_seed(seed)
    gamma = torch._standard_gamma(torch.full((content**length,), alpha, dtype=torch.float64), g)
    return (gamma / gamma.sum()).view([content] * length)
