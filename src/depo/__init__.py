"""depo: Difficulty-Estimated Policy Optimization.

A small text encoder predicts, before any rollout, the current policy's pass rate on each
candidate prompt; prompts whose G sampled answers would all be right or all wrong (a
zero-variance group, which gives GRPO no gradient) are skipped (docs/method.md).

Nothing in depo downloads from a model hub: importing it makes offline mode the default
(set before transformers is first imported, which reads it once).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
