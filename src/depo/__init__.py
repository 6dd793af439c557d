"""depo: Difficulty-Estimated Policy Optimization.

A small text encoder predicts, before any rollout, the current policy's pass rate on each
candidate prompt; prompts whose G sampled answers would all be right or all wrong (a
zero-variance group, which gives GRPO no gradient) are skipped. See SPEC.md of the project.
"""

__version__ = "0.1.0"
