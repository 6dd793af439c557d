"""DEPO for TRL's GRPOTrainer (optional extra: `pip install 'depo-rl[trl]'`).

    from depo.integrations.trl import DEPOGRPOTrainer
    from depo.selection import make_selector

    selector = make_selector("depo", group_size=args.num_generations, seed=0)
    trainer = DEPOGRPOTrainer(model=..., reward_funcs=..., args=args, train_dataset=ds, selector=selector)
    trainer.train()

`import depo` never imports TRL; only this subpackage does.
"""

from __future__ import annotations

from depo.errors import DepoError


class MissingExtraError(DepoError, ImportError):
    """An optional dependency group is not installed."""


try:
    import trl  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError(
        "DEPO's TRL integration needs trl, accelerate and datasets: pip install 'depo-rl[trl]'"
    ) from exc

from depo.integrations.trl.feed import SelectionFeed, state_fingerprint  # noqa: E402
from depo.integrations.trl.sampler import DEPORepeatSampler  # noqa: E402
from depo.integrations.trl.trainer import INDEX_COLUMN, STATE_FILE, DEPOGRPOTrainer, DEPOMixin  # noqa: E402

__all__ = [
    "INDEX_COLUMN",
    "STATE_FILE",
    "DEPOGRPOTrainer",
    "DEPOMixin",
    "DEPORepeatSampler",
    "MissingExtraError",
    "SelectionFeed",
    "state_fingerprint",
]
