"""Decoder names to policy classes, and building a validated policy from its parameters."""

from __future__ import annotations

from nclb.errors import UserError
from nclb.sampler.decoders import ARMED, MED, Decoder, KToken, LLaDA, Threshold, validate_decoder
from nclb.sampler.eb import EB
from nclb.sampler.klass import KLASS
from nclb.sampler.verify import Verify

DECODERS: dict[str, type] = {
    "ktoken": KToken,
    "med": MED,
    "ar_med": ARMED,
    "threshold": Threshold,
    "llada": LLaDA,
    "eb": EB,
    "klass": KLASS,
    "verify": Verify,
}


def build_decoder(name: str, **params) -> Decoder:
    """The decoder policy called `name` with its parameters (validated)."""
    if name not in DECODERS:
        raise UserError(f"decoder={name!r} is unknown; choose one of {sorted(DECODERS)}")
    decoder = DECODERS[name](**params)
    if hasattr(decoder, "validate"):
        decoder.validate()
    else:
        validate_decoder(decoder)
    return decoder
