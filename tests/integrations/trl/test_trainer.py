"""DEPO inside TRL's GRPOTrainer, one process: selection applied, rewards fed back, metrics logged,
checkpoint -> resume restores the selector and the data position."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("trl")
torch = pytest.importorskip("torch")

from depo.errors import DepoError  # noqa: E402
from depo.integrations.trl import STATE_FILE, DEPOGRPOTrainer, state_fingerprint  # noqa: E402
from depo.selection import make_selector  # noqa: E402
from depo.state_io import load_state  # noqa: E402
from depo.types import Candidate, Decisions, GroupOutcome  # noqa: E402
from tests.integrations.trl.trl_support import (  # noqa: E402
    LearnedHash,
    build_tiny_model,
    grpo_args,
    parity_reward,
    toy_dataset,
)


class SkipMultiplesOf3:
    """Deterministic decisions (by prompt id), stateful memory of observed groups."""

    def __init__(self) -> None:
        self.observed: list[str] = []
        self.with_logprobs = 0

    def select(self, batch: Sequence[Candidate]) -> Decisions:
        keep = [int(c.prompt_id) % 3 != 0 for c in batch]
        return Decisions(keep=keep, explored=[False] * len(keep), priority=np.zeros(len(keep)))

    def observe(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        self.observed.extend(o.prompt_id for o in outcomes)
        self.with_logprobs += sum(o.mean_logprobs is not None for o in outcomes)
        return {"estimator/observed": float(len(self.observed))}

    def state_dict(self) -> dict:
        return {"observed": list(self.observed), "with_logprobs": self.with_logprobs}

    def load_state_dict(self, state: dict) -> None:
        self.observed = list(state["observed"])
        self.with_logprobs = int(state["with_logprobs"])


class StubEstimator:
    """Predicts pass rate 0.0 for prompts whose id is a multiple of 3, else 0.5; records updates."""

    def __init__(self) -> None:
        self.updates: list[list[GroupOutcome]] = []

    def predict(self, texts: Sequence[str]):
        import numpy as np

        return np.array([0.0 if int(t.split("+")[0]) % 3 == 0 else 0.5 for t in texts])

    def update(self, outcomes: Sequence[GroupOutcome]) -> dict[str, float]:
        self.updates.append(list(outcomes))
        return {"estimator/n": float(len(outcomes))}

    def state_dict(self) -> dict:
        return {"updates": len(self.updates)}

    def load_state_dict(self, state: dict) -> None:
        pass


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2")))


def make_trainer(model_dir, out, selector, **overrides):
    depo_options = {k: overrides.pop(k) for k in ("logprobs", "selection", "oversample") if k in overrides}
    return DEPOGRPOTrainer(
        model=model_dir,
        reward_funcs=parity_reward,
        args=grpo_args(out, **overrides),
        train_dataset=toy_dataset(),
        selector=selector,
        **{"logprobs": "always", **depo_options},
    )


def test_depo_in_trl_selects_learns_and_logs(model_dir, tmp_path) -> None:
    sel = SkipMultiplesOf3()
    trainer = make_trainer(model_dir, tmp_path, sel)  # 8 completions / step = 2 prompts x 4
    trainer.train()
    history = trainer.depo_feed.history
    steps = [h for h in trainer.state.log_history if "frac_reward_zero_std" in h]
    assert len(steps) == 4
    # one generation batch drawn ahead (the dataloader's prefetch): 5 drawn, 4 rolled out
    assert len(history) == 5
    rolled_out = [str(i) for chunk in history[:4] for i in chunk]
    assert sel.observed == rolled_out
    assert all(int(p) % 3 != 0 for p in sel.observed)
    assert sel.with_logprobs == len(sel.observed)
    for h in steps:
        # same rewards, two bookkeepings: TRL's zero-std fraction and DEPO's effective rate
        assert h["select/effective_rate"] == pytest.approx(1.0 - h["frac_reward_zero_std"])
        assert h["select/kept"] == 2 and h["select/scanned"] >= 2
        assert h["select/in_flight"] == 1
    assert steps[-1]["select/rollouts_total"] == 4 * 8
    assert steps[-1]["estimator/observed"] == 8


def test_project_depo_selector_runs_inside_trl(model_dir, tmp_path) -> None:
    est = StubEstimator()
    sel = make_selector("depo", group_size=4, seed=0, options={"warmup_steps": 1, "explore": 0.0}, estimator=est)
    trainer = make_trainer(model_dir, tmp_path, sel)
    trainer.train()
    history = trainer.depo_feed.history
    # warm-up (1 observed step) keeps all; chunks drawn after it skip the predicted-hopeless prompts.
    # Chunks 1-2 were drawn before the first observation (the one-batch lag), so they may hold some.
    assert all(i % 3 != 0 for chunk in history[2:] for i in chunk)
    assert [len(u) for u in est.updates] == [2, 2, 2, 2]
    assert all(o.mean_logprobs is not None and len(o.rewards) == 4 for u in est.updates for o in u)
    logged = [h for h in trainer.state.log_history if "frac_reward_zero_std" in h]
    assert all("estimator/n" in h for h in logged)
    assert sum(h["select/skipped"] for h in logged) > 0


def test_keep_by_rank_inside_trl(model_dir, tmp_path) -> None:
    est = StubEstimator()
    sel = make_selector("depo", group_size=4, seed=0, options={"warmup_steps": 1}, estimator=est)
    trainer = make_trainer(model_dir, tmp_path, sel, selection="rank", oversample=2.0)
    stream, pools = trainer.depo_feed.stream, []
    draw = stream.next_batch

    def recorded():
        out = draw()
        pools.append(list(stream.last_scanned))  # (index, priority, kept) of every scanned candidate
        return out

    stream.next_batch = recorded
    trainer.train()
    logged = [h for h in trainer.state.log_history if "select/scanned" in h]
    # one batch scanned while the selector is in its warm-up (chunk 2 is drawn before the first
    # observation: the one-batch lag), then 2 x the batch, half kept: survival 1 / oversample
    assert [h["select/scanned"] for h in logged] == [2, 2, 4, 4] and all(h["select/kept"] == 2 for h in logged)
    for pool in pools[2:]:  # the kept ones rank above the rest; hopeless ids (multiples of 3) rank last
        assert min(p for _, p, k in pool if k) >= max(p for _, p, k in pool if not k)
        assert all(k or i % 3 == 0 or not any(j % 3 == 0 and kk for j, _, kk in pool) for i, _, k in pool)


def test_auto_logprobs_pass_none_when_trl_did_not_compute_them(model_dir, tmp_path) -> None:
    sel = SkipMultiplesOf3()
    make_trainer(model_dir, tmp_path, sel, max_steps=1, logprobs="auto").train()
    assert sel.observed and sel.with_logprobs == 0


def test_checkpoint_then_resume_restores_selector_and_data_position(model_dir, tmp_path) -> None:
    full_sel = SkipMultiplesOf3()
    full = make_trainer(model_dir, tmp_path / "a", full_sel, save_strategy="steps", save_steps=2)
    full.train()
    ckpt = tmp_path / "a" / "checkpoint-2"
    assert (ckpt / STATE_FILE).is_file()

    resumed_sel = SkipMultiplesOf3()
    resumed = make_trainer(model_dir, tmp_path / "a", resumed_sel, save_strategy="no")
    resumed.train(resume_from_checkpoint=str(ckpt))
    # state restored: the first two steps' groups come from the checkpoint, then the same
    # prompts as the uninterrupted run (the chunk prefetched before the save is drawn again)
    assert resumed.depo_feed.history[:2] == full.depo_feed.history[2:4]
    assert resumed_sel.observed == full_sel.observed
    assert state_fingerprint(resumed_sel.state_dict()) == state_fingerprint(full_sel.state_dict())
    assert resumed.state.global_step == 4


def test_learned_selector_state_survives_checkpoint(model_dir, tmp_path) -> None:
    sel = LearnedHash()
    trainer = make_trainer(model_dir, tmp_path, sel, max_steps=2, save_strategy="steps", save_steps=2)
    trainer.train()
    saved = load_state(tmp_path / "checkpoint-2", STATE_FILE.removesuffix(".json"))
    assert state_fingerprint(saved["selector"]) == state_fingerprint(sel.state_dict())
    fresh = LearnedHash()
    assert state_fingerprint(fresh.state_dict()) != state_fingerprint(sel.state_dict())
    fresh.load_state_dict(saved["selector"])
    assert state_fingerprint(fresh.state_dict()) == state_fingerprint(sel.state_dict())


def test_user_errors_are_depo_errors(model_dir, tmp_path) -> None:
    with pytest.raises(DepoError, match="text_column"):
        DEPOGRPOTrainer(
            model=model_dir, reward_funcs=parity_reward, args=grpo_args(tmp_path), train_dataset=toy_dataset(), text_column="nope"
        )
    with pytest.raises(DepoError, match="indexable"):
        DEPOGRPOTrainer(
            model=model_dir, reward_funcs=parity_reward, args=grpo_args(tmp_path), train_dataset=toy_dataset().to_iterable_dataset()
        )
    with pytest.raises(DepoError, match="logprobs"):
        DEPOGRPOTrainer(
            model=model_dir, reward_funcs=parity_reward, args=grpo_args(tmp_path), train_dataset=toy_dataset(), logprobs="sometimes"
        )
    from datasets import Dataset

    with pytest.raises(DepoError, match="cannot read a prompt text.*'prompt' column; pass text_column="):
        DEPOGRPOTrainer(
            model=model_dir, reward_funcs=parity_reward, args=grpo_args(tmp_path),
            train_dataset=Dataset.from_dict({"prompt": [[{"role": "user", "content": ""}]] * 4}),
        )
    with pytest.raises(DepoError, match="no 'prompt' column; pass text_column="):
        DEPOGRPOTrainer(
            model=model_dir, reward_funcs=parity_reward, args=grpo_args(tmp_path),
            train_dataset=Dataset.from_dict({"question": ["a", "b"]}),
        )
    with pytest.raises(DepoError, match="id_column='uid' has duplicate ids"):
        DEPOGRPOTrainer(
            model=model_dir, reward_funcs=parity_reward, args=grpo_args(tmp_path),
            train_dataset=Dataset.from_dict({"prompt": ["a", "b", "c"], "uid": ["1", "2", "1"]}), id_column="uid",
        )


def test_a_grpo_trainer_subclass_keeps_its_own_arguments(model_dir, tmp_path) -> None:
    from trl import GRPOTrainer

    from depo.integrations.trl import DEPOMixin

    class Penalised(GRPOTrainer):
        def __init__(self, *args, penalty: float = 0.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.penalty = penalty

    class DEPOPenalised(DEPOMixin, Penalised):
        pass

    # train_dataset by position (GRPOTrainer's fourth argument), the subclass's keyword passed through
    trainer = DEPOPenalised(model_dir, parity_reward, grpo_args(tmp_path), toy_dataset(), penalty=0.5, selector=SkipMultiplesOf3())
    assert trainer.penalty == 0.5 and "depo_index" in trainer.train_dataset.column_names


def test_a_reward_outside_zero_one_is_refused_when_the_selector_learns_pass_rates(model_dir, tmp_path) -> None:
    def two(completions, **kwargs):
        return [2.0 for _ in completions]

    selector = make_selector("depo", group_size=4, seed=0, estimator=StubEstimator())
    trainer = DEPOGRPOTrainer(model=model_dir, reward_funcs=two, args=grpo_args(tmp_path, max_steps=1),
                              train_dataset=toy_dataset(), selector=selector)
    with pytest.raises(DepoError, match=r"DEPO learns rewards as pass rates: .*reward_funcs\) must be in \[0, 1\], got 2"):
        trainer.train()
    uniform = DEPOGRPOTrainer(model=model_dir, reward_funcs=two, args=grpo_args(tmp_path / "u", max_steps=1),
                              train_dataset=toy_dataset())
    uniform.train()  # GRPO's own selection reads no pass rate: any reward scale
    assert uniform.state.global_step == 1


def test_reused_generations_draw_one_chunk_per_generation(model_dir, tmp_path) -> None:
    # generation batch = 4 x 2 steps = 8 completions = 2 prompts, reused for 2 iterations:
    # 4 optimizer steps x 2 micro-batches = 8 micro-steps = 2 generations
    sel = SkipMultiplesOf3()
    trainer = make_trainer(
        model_dir, tmp_path, sel, per_device_train_batch_size=4, gradient_accumulation_steps=2,
        steps_per_generation=2, num_iterations=2, logprobs="auto",
    )  # fmt: skip
    trainer.train()
    history = trainer.depo_feed.history
    assert len(history) == 3  # 2 generations + 1 prefetched
    assert sel.observed == [str(i) for chunk in history[:2] for i in chunk]
    # TRL computes old log-probs itself when generations are reused: "auto" passes them on
    assert sel.with_logprobs == 4


class _RunsCode:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_selector_state_is_refused_and_runs_nothing(model_dir, tmp_path) -> None:
    full = make_trainer(model_dir, tmp_path / "a", SkipMultiplesOf3(), max_steps=2, save_strategy="steps", save_steps=2)
    full.train()
    ckpt = tmp_path / "a" / "checkpoint-2"
    (ckpt / STATE_FILE).unlink()
    marker = tmp_path / "pwned"
    torch.save({"selector": _RunsCode(marker)}, ckpt / "depo_selector.pt")
    resumed = make_trainer(model_dir, tmp_path / "a", SkipMultiplesOf3(), save_strategy="no")
    with pytest.raises(DepoError, match=r"pickled depo_selector.pt, which depo does not load"):
        resumed.train(resume_from_checkpoint=str(ckpt))
    assert not marker.exists()
