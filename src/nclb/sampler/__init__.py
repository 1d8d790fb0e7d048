"""The sampler: one loop (`generate`) driven by small decoder policies."""

from nclb.sampler.decoders import Decoder, build_decoder
from nclb.sampler.loop import Generation, SamplerConfig, StepRecord, generate

__all__ = ["Decoder", "Generation", "SamplerConfig", "StepRecord", "build_decoder", "generate"]
