"""Hugging Face checkpoints behind the MaskedLM interface (tiny, LLaDA, Dream).

One adapter for every family; what differs between families is data in `FAMILIES`.

Special ids are read from the checkpoint, first hit wins:
  mask: the family's mask token string in the tokenizer, tokenizer.mask_token,
        config.mask_token_id, then the config's `mask_id` (a fallback: when the checkpoint names a
        different id, the checkpoint wins and a warning says so);
  eos:  the family's end tokens in the tokenizer, tokenizer.eos_token, config.eos_token_id (all kept);
  pad:  tokenizer.pad_token, config.pad_token_id, then the first eos id.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from nclb.errors import UserError
from nclb.models.kvcache import CachedForward, KVCache, gather_columns
from nclb.models.padding import padded_positions, pairwise_mask
from nclb.schema import Device, Flag, Integer, OneOf, field_rule, from_mapping, setting

log = logging.getLogger(__name__)


class ModelLoadError(UserError):
    """A checkpoint that cannot be loaded as configured; the one-line message says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclass(frozen=True)
class Family:
    """What differs between checkpoint families.

    shifted: the model's output at i predicts token i+1 (Dream), so logits are moved right by one.
    attention: how padding reaches the model: "ignored" (the remote code attends everywhere, so
        left padding changes results: batch equal-length prompts), "2d" (a bool [B, N] mask),
        "4d" (a bool [B, 1, N, N] mask plus position ids counted from the first real token).
    auto_class: the transformers auto class named in the checkpoint's `auto_map`.
    mask_token, eos_tokens: token strings looked up in the checkpoint's tokenizer.
    separable_head: the released code exposes its base model (`get_decoder()`, returning
        `last_hidden_state`) apart from its LM head (`get_output_embeddings()`), so logits are
        computed at the asked columns only; else the whole forward runs and they are picked.
    query_positions: the model's own forward takes `query_positions` and computes its head at
        those columns only (the tiny model).
    forward: the name of the family's own key/value-cache forward in nclb.models.forwards
        (BUILDERS), or None where it has none (then only cache=none runs on it).
    """

    name: str
    shifted: bool
    attention: str
    auto_class: str
    mask_token: str | None = None
    eos_tokens: tuple[str, ...] = ()
    separable_head: bool = False
    query_positions: bool = False
    forward: str | None = None

    @property
    def supports_padding(self) -> bool:
        """Whether left-padded rows give the same logits at real tokens as unpadded ones."""
        return self.attention != "ignored"


FAMILIES = {
    "tiny": Family(
        "tiny",
        shifted=False,
        attention="2d",
        auto_class="AutoModelForMaskedLM",
        query_positions=True,
        forward="tiny",
    ),
    "llada": Family(
        "llada",
        shifted=False,
        attention="ignored",
        auto_class="AutoModel",
        mask_token="<|mdm_mask|>",
        eos_tokens=("<|endoftext|>", "<|eot_id|>"),
        forward="llada",
    ),
    "dream": Family(
        "dream",
        shifted=True,
        attention="4d",
        auto_class="AutoModel",
        mask_token="<|mask|>",
        eos_tokens=("<|endoftext|>", "<|im_end|>"),
        separable_head=True,
        forward="dream",
    ),
}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DEVICE = Device()


class HFCodec:
    """TextCodec over a transformers tokenizer; `drop_ids` (mask, pad, eos) never reach the text."""

    def __init__(self, tokenizer, drop_ids: Iterable[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.drop_ids = frozenset(drop_ids)
        added = getattr(tokenizer, "added_tokens_decoder", {}).values()
        specials = set(tokenizer.all_special_tokens) | {t.content for t in added if t.special}
        self.special_strings = tuple(sorted(specials, key=len, reverse=True))

    def encode(self, text: str) -> list[int]:
        """Ids of `text` without special tokens."""
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: list[int]) -> str:
        """Text of `ids` with special tokens (mask, pad, eos, chat markers) dropped."""
        kept = [i for i in ids if i not in self.drop_ids]
        return self.strip_special(self.tokenizer.decode(kept, skip_special_tokens=True))

    def strip_special(self, text: str) -> str:
        """`text` with every special-token string removed (for text decoded with specials)."""
        for tok in self.special_strings:
            text = text.replace(tok, "")
        return text


def shift_right(logits: torch.Tensor) -> torch.Tensor:
    """Align next-token logits so that position i predicts token i (position 0 copies itself)."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


@dataclass(frozen=True)
class SpecialIds:
    """The ids the sampler needs."""

    mask_id: int
    pad_id: int
    eos_ids: tuple[int, ...]


def _token_id(tokenizer, token: str | None) -> int | None:
    """The id of `token` in the tokenizer's vocabulary, or None where it has none."""
    if not token:
        return None
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or (tid == tokenizer.unk_token_id and token != tokenizer.unk_token):
        return None
    return int(tid)


def _config_ids(config, key: str) -> list[int]:
    """config.<key> as a list of ints (the field may be missing, an int or a list)."""
    value = getattr(config, key, None)
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]


def _unique(ids: Iterable[int | None]) -> list[int]:
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def resolve_special_ids(
    family: Family, tokenizer, config, mask_id: int | None = None
) -> SpecialIds:
    """Mask, pad and eos ids from the checkpoint (see the module docstring for the order)."""
    named = _unique(
        [_token_id(tokenizer, family.mask_token), tokenizer.mask_token_id]
        + _config_ids(config, "mask_token_id")
    )
    if not named and mask_id is None:
        raise ModelLoadError(
            f"the {family.name} checkpoint names no mask token; set model.mask_id=<id>"
        )
    if named and mask_id is not None and named[0] != mask_id:
        log.warning(
            "model.mask_id=%s differs from the checkpoint's mask id %s; using the checkpoint's",
            mask_id,
            named[0],
        )
    mask = named[0] if named else mask_id
    eos = _unique(
        [_token_id(tokenizer, t) for t in family.eos_tokens]
        + [tokenizer.eos_token_id]
        + _config_ids(config, "eos_token_id")
    )
    if not eos:
        raise ModelLoadError(f"the {family.name} checkpoint names no end-of-sequence token")
    pad = _unique([tokenizer.pad_token_id, *_config_ids(config, "pad_token_id"), eos[0]])[0]
    return SpecialIds(mask_id=mask, pad_id=pad, eos_ids=tuple(eos))


class ServedForward:
    """A family's CachedForward as HFMaskedLM serves it: inputs moved to the model's device,
    no gradients, logits finished as `HFMaskedLM.logits` finishes them."""

    def __init__(self, forward: CachedForward, lm: HFMaskedLM) -> None:
        self.forward = forward
        self.lm = lm

    def __call__(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor,
        columns: torch.Tensor,
        cache: KVCache | None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Logits [B, Q, V] at `columns` and the cache (nclb.models.kvcache.CachedForward)."""
        device = self.lm.device
        with torch.no_grad():
            logits, kept = self.forward(
                ids.to(device), attention_mask.to(device, torch.bool), columns.to(device), cache
            )
        return self.lm.finish(logits), kept


class HFMaskedLM:
    """A transformers model and tokenizer as a MaskedLM (position i predicts token i).

    supports_padding: False for LLaDA, whose released code ignores the attention mask; a runner
    should then batch prompts of equal length (left padding is allowed but changes the logits).
    suppress_eos: set every eos logit to -inf, so the sampler never commits one (LLaDA EVAL.md).
    cached_forward: the family's own forward over a key/value cache (Family.forward) on this
    model's weights, serving logits as `logits` does; None where the family has none or cannot
    serve this checkpoint (`no_cache_reason` says why). Rebuilt when `model` is replaced (e.g.
    wrapped with adapters).
    """

    def __init__(
        self,
        model,
        tokenizer,
        family: Family,
        *,
        chat_template: bool | str = "auto",
        suppress_eos: bool = False,
        mask_id: int | None = None,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.family = family
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        self.vocab_size = int(model.config.vocab_size)
        ids = resolve_special_ids(family, tokenizer, model.config, mask_id)
        for name, value in (("mask", ids.mask_id), ("pad", ids.pad_id), ("eos", max(ids.eos_ids))):
            if not 0 <= value < self.vocab_size:
                raise ModelLoadError(
                    f"{name} id {value} is outside the model's vocabulary of {self.vocab_size}; "
                    "check model.mask_id and the checkpoint's tokenizer"
                )
        self.mask_id, self.pad_id, self.eos_ids = ids.mask_id, ids.pad_id, ids.eos_ids
        self.codec = HFCodec(tokenizer, drop_ids=(self.mask_id, self.pad_id, *self.eos_ids))
        self.use_chat_template = _chat_template_setting(chat_template, tokenizer, family)
        self.suppress_eos = suppress_eos
        self.supports_padding = family.supports_padding
        self._warned_padding = False
        self._served: tuple[Any, CachedForward | None, str | None] = (None, None, None)

    @property
    def cached_forward(self) -> CachedForward | None:
        """The family's key/value-cache forward on this model, or None (see the class doc)."""
        return self._serve()[0]

    @property
    def no_cache_reason(self) -> str | None:
        """Why `cached_forward` is None (None when there is one)."""
        return self._serve()[1]

    def _serve(self) -> tuple[CachedForward | None, str | None]:
        """The cached forward of the current `model` and why there is none, built once per
        model object."""
        built_for, forward, reason = self._served
        if built_for is not self.model:
            forward, reason = self._build_forward()
            self._served = (self.model, forward, reason)
        return forward, reason

    def _build_forward(self) -> tuple[CachedForward | None, str | None]:
        if self.family.forward is None:
            return None, f"model.family={self.family.name} has no key/value-cache forward"
        from nclb.models.forwards import UnsupportedCheckpoint, build_forward

        try:
            return ServedForward(build_forward(self.family.forward, self.model), self), None
        except UnsupportedCheckpoint as err:
            return None, str(err)

    @torch.no_grad()
    def logits(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        columns: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Float32 logits [B, Q, V] at `columns` [B, Q] (every column when None); position i
        predicts token i for every family. Where the family's head is separable it runs at
        the asked columns only."""
        ids = ids.to(self.device)
        columns = None if columns is None else columns.to(self.device)
        if self.family.separable_head:
            return self.finish(self._head_logits(ids, attention_mask, columns))
        if self.family.query_positions and columns is not None:
            real = None if attention_mask is None else attention_mask.to(self.device, torch.bool)
            kwargs = self._attention_kwargs(real)
            return self.finish(self.model(input_ids=ids, query_positions=columns, **kwargs).logits)
        out = self.training_logits(ids, attention_mask)
        return self.finish(out if columns is None else gather_columns(out, columns))

    def finish(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits as the sampler gets them: float32, every eos at -inf when suppress_eos."""
        out = logits.float()
        if self.suppress_eos:
            out[..., list(self.eos_ids)] = float("-inf")
        return out

    def training_logits(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits [B, N, V] in the model's dtype, with gradients when they are enabled (what a
        trainer backpropagates through); position i predicts token i for every family."""
        ids = ids.to(self.device)
        real = None if attention_mask is None else attention_mask.to(self.device, torch.bool)
        out = self.model(input_ids=ids, **self._attention_kwargs(real)).logits
        return shift_right(out) if self.family.shifted else out

    def _head_logits(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, columns: torch.Tensor | None
    ) -> torch.Tensor:
        """The released base model over every column, its LM head at `columns` only (for a
        shifted family the head reads the hidden state before each column; column 0 its own)."""
        real = None if attention_mask is None else attention_mask.to(self.device, torch.bool)
        body = self.model.get_decoder()
        hidden = body(input_ids=ids, **self._attention_kwargs(real)).last_hidden_state
        if columns is None:
            columns = torch.arange(ids.shape[1], device=ids.device).expand(ids.shape[0], -1)
        reads = (columns - 1).clamp(min=0) if self.family.shifted else columns
        return self.model.get_output_embeddings()(gather_columns(hidden, reads))

    def _attention_kwargs(self, real: torch.Tensor | None) -> dict[str, Any]:
        """The padding arguments this family's forward takes (none when nothing is padded)."""
        if real is None or bool(real.all()):
            return {}
        if self.family.attention == "2d":
            return {"attention_mask": real}
        if self.family.attention == "4d":
            return {"attention_mask": pairwise_mask(real), "position_ids": padded_positions(real)}
        if not self._warned_padding:
            warnings.warn(
                f"{self.family.name} ignores the attention mask: left-padded rows attend to the "
                "padding, so their logits differ from unpadded ones; batch equal-length prompts",
                stacklevel=4,
            )
            self._warned_padding = True
        return {}

    def prompt_ids(self, text: str) -> list[int]:
        """Ids of a user prompt: chat template with the assistant header when enabled, else the
        tokenizer's plain encoding (with its own special tokens, e.g. a BOS)."""
        if self.use_chat_template:
            messages = [{"role": "user", "content": text}]
            return list(
                self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True
                )
            )
        return list(self.tokenizer(text)["input_ids"])

    def describe(self) -> dict[str, Any]:
        """What was loaded, for run logs."""
        return {
            "family": self.family.name,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "mask_id": self.mask_id,
            "pad_id": self.pad_id,
            "eos_ids": list(self.eos_ids),
            "chat_template": self.use_chat_template,
            "suppress_eos": self.suppress_eos,
            "supports_padding": self.supports_padding,
        }


def _chat_template_setting(setting: bool | str, tokenizer, family: Family) -> bool:
    """auto: use the tokenizer's chat template if it has one; true: require one; false: never."""
    has = bool(getattr(tokenizer, "chat_template", None))
    if setting is True and not has:
        raise ModelLoadError(
            f"model.chat_template=true but the {family.name} tokenizer has no chat template; "
            "set model.chat_template=auto or false"
        )
    return has if setting == "auto" else bool(setting)


def get_family(name: str) -> Family:
    """The Family called `name`, or a ModelLoadError listing the known ones."""
    if name not in FAMILIES:
        raise ModelLoadError(f"model.family={name!r} is unknown; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def resolve_device(spec: str) -> torch.device:
    """auto -> cuda if a GPU is visible, else cpu; cuda / cuda:N must exist."""
    spec = DEVICE.check("device", str(spec))
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device={spec} requested but no CUDA GPU is visible; use device=cpu or device=auto"
            )
        index = spec.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise ModelLoadError(
                f"device={spec} does not exist ({torch.cuda.device_count()} GPUs visible); "
                "use device=cuda:0 or device=auto"
            )
        return torch.device(spec)


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """auto -> bf16 on CUDA, fp32 on CPU; else bf16 | fp16 | fp32."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[field_rule(ModelOptions, "dtype").check("model.dtype", spec)]


def dtype_keyword(version: str) -> str:
    """The `from_pretrained` keyword for the weights' dtype under transformers `version`:
    `dtype` from 4.56 on (where `torch_dtype` is deprecated, with a warning), else `torch_dtype`."""
    from packaging.version import Version

    return "dtype" if Version(version).release >= (4, 56) else "torch_dtype"


def _looks_local(path: str) -> bool:
    """A filesystem path rather than a hub id like 'GSAI-ML/LLaDA-8B-Instruct'."""
    return path.startswith(("/", ".", "~")) or path.count("/") > 1


def resolve_path(path: str, local_files_only: bool = True) -> Path:
    """A checkpoint folder: `path` itself, or the hub id's snapshot in the local HF cache."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelLoadError(
                f"model.path={path} has no config.json; point model.path at a checkpoint folder"
            )
        return folder
    hint = (
        f"model.path={path} not found locally; download with `huggingface-cli download {path}` "
        "on a machine with internet, or set model.path=/local/folder"
    )
    if _looks_local(path):
        raise ModelLoadError(f"model.path={path} not found; set model.path to a checkpoint folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=path, local_files_only=local_files_only))
    except (OSError, ValueError) as err:
        cause = "" if local_files_only else f" ({str(err).splitlines()[0]})"
        raise ModelLoadError(hint + cause) from None


@dataclass(frozen=True)
class ModelOptions:
    """The model config group, validated (see configs/model/llada.yaml for the keys)."""

    family: str
    path: str
    dtype: str = setting("auto", OneOf(options=("auto", *DTYPES)))
    device: str = setting("auto", DEVICE)
    trust_remote_code: bool = setting(True, Flag())
    local_files_only: bool = setting(True, Flag())
    chat_template: bool | str = setting("auto", Flag(words=("auto",)))
    suppress_eos: bool = setting(False, Flag())
    mask_id: int | None = setting(None, Integer(min=0, nullable=True, meaning="a token id"))

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> ModelOptions:
        """Check keys and values; `name` (the config's own label) is ignored."""
        for key in ("family", "path"):
            if not cfg.get(key):
                raise ModelLoadError(f"model.{key} is required")
        try:
            return from_mapping(cls, cfg, "model.", ignore=("name",))
        except UserError as err:
            raise ModelLoadError(str(err)) from None


def load_hf_model(cfg: Mapping[str, Any]) -> HFMaskedLM:
    """Load a checkpoint folder or cached hub id as a MaskedLM (keys: see ModelOptions)."""
    opts = ModelOptions.from_cfg(cfg)
    family = get_family(opts.family)
    device = resolve_device(opts.device)
    dtype = resolve_dtype(opts.dtype, device)
    folder = resolve_path(opts.path, opts.local_files_only)
    import transformers

    kwargs = {"trust_remote_code": opts.trust_remote_code, "local_files_only": True}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **kwargs)
        auto = getattr(transformers, family.auto_class)
        dtype_kw = {dtype_keyword(transformers.__version__): dtype}
        model = auto.from_pretrained(folder, **kwargs, **dtype_kw)
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, SafetensorError):
            fix = "the weights file is corrupt: copy or download the checkpoint again"
        elif "trust_remote_code" in str(err):
            fix = "set model.trust_remote_code=true"
        else:
            fix = f"check that model.family={family.name} matches the checkpoint"
        raise ModelLoadError(f"could not load model.path={opts.path}: {first}; {fix}") from None
    return HFMaskedLM(
        model.to(device),
        tokenizer,
        family,
        chat_template=opts.chat_template,
        suppress_eos=opts.suppress_eos,
        mask_id=opts.mask_id,
    )
