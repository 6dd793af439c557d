"""`python -m depo.integrations.verl.main [hydra overrides]`: verl PPO/GRPO training with DEPO.

It is verl's own entry point (`verl.trainer.main_ppo`) with two changes: the config is
`config/depo_trainer.yaml` (verl's `ppo_trainer` plus the `depo:` block), and verl's legacy
TaskRunner builds `RayDEPOTrainer` where it would build `RayPPOTrainer`. Everything else,
workers, resource pools, reward loading and validation, is verl's code, unchanged.
"""

from __future__ import annotations

import sys

import hydra
import ray

from depo.errors import DepoError


def _task_runner_class() -> type:
    """verl's legacy TaskRunner with RayDEPOTrainer in place of RayPPOTrainer (a Ray actor class).

    The runner's `run()` builds the trainer by its module-level name; the subclass rebinds that
    name inside the runner's own process (a dedicated Ray actor) before delegating to verl.
    """
    from verl.trainer import main_ppo_v0

    base = main_ppo_v0.TaskRunner.__ray_actor_class__

    class DEPOTaskRunner(base):
        def run(self, config):
            from depo.integrations.verl.trainer import RayDEPOTrainer

            main_ppo_v0.RayPPOTrainer = RayDEPOTrainer
            return super().run(config)

    return ray.remote(DEPOTaskRunner)


def run(config) -> None:
    """Validate like verl's main, then train on the Ray cluster (ray.init per `ray_kwargs`)."""
    # verl's modules and the trainer load in the process that runs them (here the driver, in
    # `_task_runner_class` the TaskRunner actor), as verl's own main_ppo imports them
    from verl.trainer.main_ppo import run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    from depo.integrations.verl.trainer import check_config

    auto_set_device(config)
    check_config(config)  # the whole depo: block, here in the driver: a typo fails before Ray starts
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    run_ppo(config, task_runner_class=_task_runner_class())


@hydra.main(config_path="config", config_name="depo_trainer", version_base=None)
def main(config) -> None:
    try:
        run(config)
    except DepoError as exc:  # a user error: one line, exit 2 (as the depo CLI does)
        print(f"depo: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
