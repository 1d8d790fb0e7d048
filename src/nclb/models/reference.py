"""`model=reference`: a MaskedLM that always predicts a task's reference output.

A plumbing check: any sampler run through the normal runner and scorer on this model must score
(nearly) 100%. Text goes through a byte-level codec (any text is encodable; ids 0-255 are bytes,
then mask, pad and eos). For each example the model knows the prompt ids and the region it should
produce (`task.reference_output(example)`, laid out on the task's canvas). `logits()` finds the
prompt in each row and puts `confidence` on the reference token at every region position (on the
input token itself elsewhere), so argmax decoding in any order recovers the reference exactly.
"""

from __future__ import annotations

import torch

from nclb.errors import UserError
from nclb.models.kvcache import gather_columns
from nclb.types import Canvas, Example, ReferenceSource

MASK_ID, PAD_ID, EOS_ID = 256, 257, 258
VOCAB_SIZE = 259
CUT_MARK = " ... "


class ByteCodec:
    """UTF-8 bytes as token ids; special ids (>= 256) are dropped on decode."""

    def encode(self, text: str) -> list[int]:
        """The UTF-8 bytes of `text`."""
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        """Text of the byte ids in `ids` (invalid UTF-8 becomes U+FFFD)."""
        return bytes(i for i in ids if 0 <= i < 256).decode("utf-8", errors="replace")


def fit(tokens: list[int], size: int, mark: list[int]) -> tuple[list[int], bool]:
    """`tokens` padded with eos to `size`, or cut in the middle (keeping both ends) to fit."""
    if len(tokens) <= size:
        return tokens + [EOS_ID] * (size - len(tokens)), False
    keep = size - len(mark)
    if keep < 2:
        return tokens[:size], True
    head = keep // 2
    return tokens[:head] + mark + tokens[len(tokens) - (keep - head) :], True


class ReferenceModel:
    """Byte-level MaskedLM that reproduces the reference output of known prompts."""

    mask_id = MASK_ID
    pad_id = PAD_ID
    eos_ids = (EOS_ID,)
    vocab_size = VOCAB_SIZE
    supports_padding = True
    cached_forward = None  # no key/value cache: cache=none only

    def __init__(self, gen_length: int, confidence: float = 50.0) -> None:
        self.codec = ByteCodec()
        self.device = torch.device("cpu")
        self.gen_length = gen_length
        self.confidence = confidence
        self.targets: dict[tuple[int, ...], list[int]] = {}
        self.cut: list[str] = []  # ids of examples whose reasoning was cut to fit the region

    @classmethod
    def for_task(
        cls,
        task: ReferenceSource,
        examples: list[Example],
        gen_length: int,
        confidence: float = 50.0,
    ) -> ReferenceModel:
        """A model that knows `task.reference_output` for each of `examples` at `gen_length`."""
        model = cls(gen_length, confidence)
        for example in examples:
            reasoning, answer = task.reference_output(example)
            model.add(example.id, task.canvas(example, model, gen_length), reasoning, answer)
        return model

    def add(self, example_id: str, canvas: Canvas, reasoning: str, answer: str | None) -> None:
        """Learn the region for `canvas`: `reasoning` in the masked positions before the answer
        block, `answer` in the answer block, both eos-padded. Over-long reasoning is cut in the
        middle, keeping both ends (its id is noted in `cut`)."""
        region = list(canvas.region)
        end = canvas.answer[0] if canvas.answer else len(region)
        slots = [i for i in range(end) if region[i] == MASK_ID]
        text, was_cut = fit(self.codec.encode(reasoning), len(slots), self.codec.encode(CUT_MARK))
        if was_cut:
            self.cut.append(example_id)
        for i, tok in zip(slots, text, strict=True):
            region[i] = tok
        if canvas.answer:
            start, stop = canvas.answer
            ids = self.codec.encode(answer or "")
            if len(ids) > stop - start:
                raise UserError(
                    f"the reference answer of {example_id} is {len(ids)} bytes but the answer "
                    f"block holds {stop - start}; set answer_length=64 (see configs/model/reference.yaml)"
                )
            region[start:stop] = ids + [EOS_ID] * (stop - start - len(ids))
        self.targets[tuple(canvas.prompt)] = region

    def prompt_ids(self, text: str) -> list[int]:
        """The bytes of `text` (no chat template)."""
        return self.codec.encode(text)

    def _locate(self, row: list[int], start: int) -> tuple[int, list[int]]:
        """(region offset, reference region) for a row whose prompt begins at `start`."""
        guess = len(row) - self.gen_length
        if tuple(row[start:guess]) in self.targets:
            return guess, self.targets[tuple(row[start:guess])]
        for key, region in self.targets.items():
            if tuple(row[start : start + len(key)]) == key:
                return start + len(key), region
        raise KeyError(
            "reference model: no reference for this prompt; build the model with "
            "ReferenceModel.for_task on the same task, examples and gen_length"
        )

    @torch.no_grad()
    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[B, N, V] logits: `confidence` on the reference token of each position, 0 elsewhere."""
        target = ids.clone()
        for b, row in enumerate(ids.tolist()):
            if attention_mask is not None:
                start = int((~attention_mask[b].bool()).sum())
            else:
                start = next((i for i, t in enumerate(row) if t != PAD_ID), len(row))
            offset, region = self._locate(row, start)
            span = min(len(region), len(row) - offset)
            target[b, offset : offset + span] = torch.tensor(region[:span])
        target[target == MASK_ID] = EOS_ID
        out = torch.zeros(*ids.shape, VOCAB_SIZE, device=ids.device)
        out.scatter_(2, target.unsqueeze(-1), self.confidence)
        return out if columns is None else gather_columns(out, columns)
