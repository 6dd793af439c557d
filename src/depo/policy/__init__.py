"""Policies: load any HF causal LM, build the embedded tiny policy, sample rollouts."""

from depo.policy.loading import encode_prompts, load_policy
from depo.policy.sampling import Rollouts, sample

__all__ = ["Rollouts", "build_tiny_policy", "encode_prompts", "load_policy", "sample"]


def build_tiny_policy(*args, **kwargs):
    """Build (or reuse) the cached warm-started tiny policy; see depo.policy.tiny."""
    from depo.policy.tiny import build_tiny_policy as _build

    return _build(*args, **kwargs)
