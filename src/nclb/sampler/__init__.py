"""The sampler: one loop (`generate`) driven by small decoder policies."""

from nclb.sampler.loop import Generation, SamplerConfig, StepRecord, generate
from nclb.sampler.policy import Decoder, build_decoder

__all__ = ["Decoder", "Generation", "SamplerConfig", "StepRecord", "build_decoder", "generate"]
