"""Token ids to display strings, from the run's tokenizer when it is on this machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nclb.models.families import tiny_checkpoint

HF_MODELS = ("tiny", "llada", "dream")
SPECIAL = "∅"  # eos / pad / other special tokens
SPECIAL_ROLES = ("eos", "pad", "bos", "mask", "unk")  # tokenizer attributes <role>_token_id
VISIBLE = {"\n": "⏎", "\t": "⇥"}


@dataclass
class TokenNames:
    """Display strings of token ids: the tokenizer's text of each id, or `#id` without one."""

    tokenizer: Any = None
    notes: list[str] = field(default_factory=list)

    def text(self, token: int) -> str:
        """The text of one token (specials as ∅, newlines as ⏎)."""
        if self.tokenizer is None:
            return f"#{token}"
        if token in set(self.tokenizer.all_special_ids):
            return SPECIAL
        text = self.tokenizer.decode([token])
        for raw, shown in VISIBLE.items():
            text = text.replace(raw, shown)
        return text

    def special_name(self, token: int) -> str | None:
        """What the SPECIAL glyph stands for at `token` ("eos [EOS]", "pad [PAD]"), None for
        an ordinary token."""
        tok = self.tokenizer
        if tok is None or token not in set(tok.all_special_ids):
            return None
        raw = tok.convert_ids_to_tokens(token)
        role = next((r for r in SPECIAL_ROLES if getattr(tok, f"{r}_token_id", None) == token), "")
        return f"{role} {raw}" if role else str(raw)


def tokenizer_path(model: dict[str, Any], task: dict[str, Any]) -> str | None:
    """Where the run's tokenizer lives: model.path, or the shipped tiny checkpoint of the task."""
    if model.get("name") not in HF_MODELS:
        return None
    if model.get("path"):
        return str(model["path"])
    if model.get("name") == "tiny" and task.get("name"):
        return str(tiny_checkpoint(task["name"]))
    return None


def token_names(model: dict[str, Any], task: dict[str, Any]) -> TokenNames:
    """TokenNames for the run's model; token ids (with a note why) when its tokenizer cannot
    be loaded from local files."""
    path = tokenizer_path(model, task)
    if path is None:
        return TokenNames(notes=[f"model={model.get('name')} has no tokenizer: token ids shown"])
    try:
        from transformers import AutoTokenizer

        local = Path(path).is_dir() or model.get("local_files_only", True)
        tokenizer = AutoTokenizer.from_pretrained(
            path,
            local_files_only=bool(local),
            trust_remote_code=bool(model.get("trust_remote_code", False)),
        )
    except Exception as err:  # noqa: BLE001 - any loading failure falls back to ids
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return TokenNames(notes=[f"could not load the tokenizer at {path} ({first}): ids shown"])
    return TokenNames(tokenizer)
