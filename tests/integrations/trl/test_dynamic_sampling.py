"""Dynamic sampling inside TRL's GRPOTrainer: the row bookkeeping by hand, then a run in which
half of the prompts always give zero-variance groups."""

from __future__ import annotations

import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from depo.errors import DepoError  # noqa: E402
from depo.integrations.trl import DEPOGRPOTrainer  # noqa: E402
from depo.integrations.trl.dynamic_sampling import choose_groups, informative_groups, merge_rows  # noqa: E402
from depo.selection import Uniform  # noqa: E402
from tests.integrations.trl.trl_support import build_tiny_model, grpo_args, parity_reward, toy_dataset  # noqa: E402


def test_informative_groups_per_process():
    rewards = [1, 1, 0, 1] + [0, 0, float("nan"), 0] + [0, 0, 0, 0] + [0.5, 0.5, 0.5, 0.6]  # G = 2
    assert informative_groups(rewards, 2, 2) == [[False, True, False, False], [False, False, False, True]]
    with pytest.raises(DepoError, match="whole groups"):
        informative_groups([1, 0, 1], 2, 1)


def test_choose_informative_first_then_zero_variance():
    rounds = [[False, True, False], [True, False, True]]
    assert choose_groups(rounds, 2) == [(0, 1), (1, 0)]
    assert choose_groups(rounds, 3) == [(0, 1), (1, 0), (1, 2)]
    assert choose_groups([[False, True], [False, False]], 2) == [(0, 1), (0, 0)]  # short: topped up, no error


def test_merge_pads_prompts_left_and_completions_right():
    a = {"prompt_ids": torch.tensor([[5, 6], [7, 8]]), "prompt_mask": torch.ones(2, 2, dtype=torch.long),
         "completion_ids": torch.tensor([[1], [2]]), "completion_mask": torch.ones(2, 1, dtype=torch.long),
         "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(2)}
    b = {"prompt_ids": torch.tensor([[9]]), "prompt_mask": torch.ones(1, 1, dtype=torch.long),
         "completion_ids": torch.tensor([[3, 4, 4]]), "completion_mask": torch.ones(1, 3, dtype=torch.long),
         "advantages": torch.tensor([1.0]), "num_items_in_batch": torch.tensor(3)}
    m = merge_rows([a, b], [(1, 0), (0, 1)], pad_token_id=0)
    assert m["prompt_ids"].tolist() == [[0, 9], [7, 8]] and m["prompt_mask"].tolist() == [[0, 1], [1, 1]]
    assert m["completion_ids"].tolist() == [[3, 4, 4], [2, 0, 0]]
    assert m["completion_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert m["advantages"].tolist() == [1.0, -0.5] and "num_items_in_batch" not in m
    with pytest.raises(DepoError, match="text-only"):
        merge_rows([{**a, "pixel_values": torch.zeros(2, 3)}], [(0, 0)], 0)


def half_constant_reward(completions, prompts, **kwargs):
    """Prompts 'i+...' with even i always score 1 (a zero-variance group); odd ones as parity_reward."""
    parity = parity_reward(completions)
    return [1.0 if int(str(p).split("+")[0]) % 2 == 0 else r for p, r in zip(prompts, parity)]


class Recording(DEPOGRPOTrainer):
    def _generate_and_score_completions(self, inputs):  # noqa: ANN001
        out = super()._generate_and_score_completions(inputs)
        if self.model.training:
            self.batches.append((len(inputs), out["advantages"].clone(), out["completion_ids"].shape[0]))
        return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2_ds")))


def test_dynamic_sampling_tops_up_with_informative_groups(model_dir, tmp_path):
    trainer = Recording(model=model_dir, reward_funcs=half_constant_reward, args=grpo_args(tmp_path, max_steps=3),
                        train_dataset=toy_dataset(), selector=Uniform(), dynamic_sampling=True, max_num_gen_batches=6)
    trainer.batches = []
    trainer.train()
    assert trainer.state.global_step == 3  # TRL's own step accounting
    logged = [h for h in trainer.state.log_history if "select/ds_rounds" in h]
    assert len(logged) == 3
    for (rows, adv, out_rows), h in zip(trainer.batches, logged):
        assert out_rows == rows == 8  # the rows TRL gave, no more
        groups = adv.view(-1, 4)
        zero = int((groups.abs().sum(dim=1) == 0).sum())
        assert zero <= h["select/ds_unfilled"]  # only a short batch holds zero-variance groups
        assert h["select/ds_rounds"] >= 1
    # every round was rolled out and observed: the feed counts the extra rounds' completions
    assert trainer.depo_feed.rollouts == sum(h["select/ds_rollouts"] for h in logged)
    assert trainer.depo_feed.rollouts > 3 * 8  # half the prompts are hopeless: rounds were added


def test_dynamic_sampling_settings(model_dir, tmp_path):
    trainer = DEPOGRPOTrainer(model=model_dir, reward_funcs=half_constant_reward,
                              args=grpo_args(tmp_path, max_steps=1, per_device_train_batch_size=6, num_generations=3,
                                             steps_per_generation=1),
                              train_dataset=toy_dataset(), dynamic_sampling=True)
    trainer.train()  # groups of 3, 6 rows
    assert trainer.state.global_step == 1 and trainer.depo_feed.rollouts % 6 == 0
    with pytest.raises(DepoError, match="max_num_gen_batches"):
        DEPOGRPOTrainer(model=model_dir, reward_funcs=half_constant_reward, args=grpo_args(tmp_path, max_steps=1),
                        train_dataset=toy_dataset(), dynamic_sampling=True, max_num_gen_batches=0)
