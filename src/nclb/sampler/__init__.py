"""The sampler: one loop (`generate`) driven by small decoder policies."""

from nclb.sampler.decoders import Decoder
from nclb.sampler.loop import Generation, SamplerConfig, StepRecord, generate
from nclb.sampler.registry import build_decoder

__all__ = ["Decoder", "Generation", "SamplerConfig", "StepRecord", "build_decoder", "generate"]
