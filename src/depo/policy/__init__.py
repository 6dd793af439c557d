"""Policies: load any HF causal LM, build the embedded tiny policy, sample rollouts."""

from depo.policy.loading import encode_prompts, load_policy
from depo.policy.sampling import Rollouts, sample
from depo.policy.tiny import build_tiny_policy

__all__ = ["Rollouts", "build_tiny_policy", "encode_prompts", "load_policy", "sample"]
