"""Write and read tiny-MDLM checkpoint folders in the standard Hugging Face layout.

A folder holds config.json (with `auto_map` pointing at the copied modeling file),
model.safetensors, modeling_nclb_tiny.py and the tokenizer files, so that
`AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)` and
`AutoTokenizer.from_pretrained(folder)` load it offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from nclb.tiny import modeling_nclb_tiny
from nclb.tiny.modeling_nclb_tiny import NclbTinyForMaskedLM

AUTO_MAP = {
    "AutoConfig": "modeling_nclb_tiny.NclbTinyConfig",
    "AutoModelForMaskedLM": "modeling_nclb_tiny.NclbTinyForMaskedLM",
}


def save_checkpoint(
    model: NclbTinyForMaskedLM, tokenizer: PreTrainedTokenizerFast, folder: str | Path
) -> Path:
    """Save weights, config, remote-code file and tokenizer into `folder` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.auto_map = dict(AUTO_MAP)
    model.config.architectures = ["NclbTinyForMaskedLM"]
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    shutil.copyfile(modeling_nclb_tiny.__file__, folder / "modeling_nclb_tiny.py")
    return folder


def load_checkpoint(folder: str | Path) -> tuple[NclbTinyForMaskedLM, PreTrainedTokenizerFast]:
    """Load a folder with the package's own classes (no remote code needed)."""
    model = NclbTinyForMaskedLM.from_pretrained(folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    return model.eval(), tokenizer
