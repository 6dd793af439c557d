"""Crash windows inside `save_checkpoint` itself: every intermediate state on disk resumes."""

from __future__ import annotations

import os

from depo.rl import checkpoint as ckpt
from depo.rl.config import load_config
from depo.rl.metrics_log import read_metrics
from depo.rl.trainer import Trainer


def test_killed_between_the_two_renames_of_a_resave_keeps_the_checkpoint(tiny_overrides, toy_tasks):
    """Re-saving step X renames step_X to .old-step_X-<pid>, then the new copy into place. A kill
    between the two leaves no step_X at all; with save_total_limit=1 it was the only checkpoint."""
    tasks = (toy_tasks(8), [])
    cfg = load_config(None, tiny_overrides(max_steps=2, save_steps=1, save_total_limit=1))
    run = Trainer(cfg, tasks=tasks).train()
    root = run / "checkpoints"
    assert [s for s, _ in ckpt.list_checkpoints(root)] == [2]
    os.rename(root / "step_000002", root / ".old-step_000002-4242")
    (root / ".tmp-step_000002-4242" / "policy").mkdir(parents=True)  # the new copy, half written

    resumed = Trainer.resume(run, ["max_steps=3"], tasks=tasks)
    assert resumed.step == 2
    resumed.train()
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [0, 1, 2, 3]
    assert sorted(p.name for p in root.iterdir()) == ["step_000003"]


def test_an_old_copy_never_replaces_a_complete_checkpoint(tmp_path):
    root = tmp_path / "checkpoints"
    for name in ("step_000005", ".old-step_000005-1"):
        (root / name / "policy").mkdir(parents=True)
        (root / name / ckpt.STATE_FILE).write_text(name)
    (root / ".old-step_000004-1" / "policy").mkdir(parents=True)  # incomplete: no state file
    ckpt.clean_partial(root)
    assert sorted(p.name for p in root.iterdir()) == ["step_000005"]
    assert (root / "step_000005" / ckpt.STATE_FILE).read_text() == "step_000005"


def test_every_file_is_on_disk_before_the_rename_makes_the_checkpoint_count(random_policy_dir, tmp_path, monkeypatch):
    """The rename is atomic, but only written-back files survive a power cut: save_pretrained
    does not fsync, so save_checkpoint does, for every file, before the rename."""
    from depo.policy import load_policy

    model, tokenizer = load_policy(random_policy_dir)
    synced: set[int] = set()  # inodes: a file keeps its inode when renamed
    synced_before_rename: dict[str, set[int]] = {}
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        synced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    def rename(src, dst) -> None:
        synced_before_rename[str(dst)] = set(synced)
        real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    final = ckpt.save_checkpoint(tmp_path / "checkpoints", 3, model, tokenizer, state={"step": 3})
    files = {p.stat().st_ino for p in final.rglob("*") if p.is_file()}
    assert len(files) > 3 and files <= synced_before_rename[str(final)]


def test_checkpoint_policy_reloads_with_the_char_tokenizer(tiny_overrides, toy_tasks):
    """A checkpoint's policy directory has no tiny-policy marker file; `depo eval --model` and
    resume must still read prompts with the char tokenizer the run trained with (a Qwen2 BPE
    rebuilt by AutoTokenizer splits spaces differently and silently ruins every prompt)."""
    from depo.policy import load_policy
    from depo.policy.tokenizer import build_char_tokenizer

    cfg = load_config(None, tiny_overrides(max_steps=1, save_steps=1))
    run_dir = Trainer(cfg, tasks=(toy_tasks(8), [])).train()
    policy = next((run_dir / "checkpoints").iterdir()) / "policy"
    assert not (policy / "depo_tiny.json").exists()
    _, tokenizer = load_policy(policy)
    prompt = "spell backward: hello world"
    assert tokenizer(prompt)["input_ids"] == build_char_tokenizer()(prompt)["input_ids"]
