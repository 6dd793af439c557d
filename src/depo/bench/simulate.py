"""A simulated RL run for comparing selectors without a policy: synthetic prompts, a policy
whose per-prompt pass rate rises with the step, Bernoulli rollouts.

Each prompt is an arithmetic question; its text shows part of its difficulty (operation and
number of digits), and a hidden per-prompt offset is visible only through its own outcomes, so
the text estimator, the per-prompt memory and their combination each have something to learn:
    p_i(t) = sigmoid(skill0 + skill_rate * t - d(op_i, digits_i) + offset_i),  offset_i ~ N(0, 1)
Run: python -m depo.bench.simulate --selectors uniform,depo-paper,depo,history,oracle
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from pydantic import Field

from depo.bench.report import Col, markdown_row, markdown_table, timed
from depo.config import Config, names_from, parse_command
from depo.errors import run_command
from depo.metrics import effective_rate
from depo.rl.metrics_log import metric_mean
from depo.rl.state import seed_everything
from depo.selection import SELECTORS, make_selector
from depo.selection.order import DataOrder
from depo.selection.stream import RefillStream
from depo.types import Candidate, GroupOutcome

OPS = {"add": 0.0, "subtract": 0.7, "multiply": 2.5, "divide": 3.0}
WORDS = {"add": "What is {a} + {b}?", "subtract": "What is {a} - {b}?", "multiply": "What is {a} * {b}?", "divide": "What is {c} / {b}? Give the exact quotient."}


@dataclass
class Prompt:
    prompt_id: str
    text: str
    difficulty: float
    offset: float


def make_prompts(n: int, seed: int = 0) -> list[Prompt]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        op = list(OPS)[rng.integers(len(OPS))]
        digits = int(rng.integers(1, 7))
        a, b = (int(rng.integers(10 ** (digits - 1), 10**digits)) for _ in range(2))
        text = WORDS[op].format(a=a, b=b, c=a * b)
        out.append(Prompt(f"p{i}", text, OPS[op] + 0.9 * digits, float(rng.normal(0.0, 1.0))))
    return out


def pass_rate(p: Prompt, step: int, skill0: float = 2.5, skill_rate: float = 0.01) -> float:
    return float(1.0 / (1.0 + np.exp(-(skill0 + skill_rate * step - p.difficulty + p.offset))))


def simulate(
    selector: str,
    *,
    n_prompts: int = 2000,
    steps: int = 200,
    batch_size: int = 32,
    group_size: int = 8,
    seed: int = 0,
    estimator: Any = None,
) -> list[dict[str, float]]:
    """Run `steps` simulated RL steps with `selector`; one metrics record per step."""
    prompts = make_prompts(n_prompts, seed)
    by_id = {p.prompt_id: p for p in prompts}
    clock = {"step": 0}
    options: dict[str, Any] = {}
    if selector == "oracle":
        options["pass_rates"] = lambda pid: pass_rate(by_id[pid], clock["step"])
    seed_everything(seed)  # the trunk's dropout draws from torch's global generator
    sel = make_selector(selector, group_size=group_size, seed=seed, options=options, estimator=estimator)
    stream = RefillStream(
        DataOrder(n_prompts, seed),
        sel,
        lambda i: Candidate(prompts[i].prompt_id, prompts[i].text),
        batch_size=batch_size,
        max_scan=4 * batch_size,
    )
    rng = np.random.default_rng(seed + 1)
    records = []
    for step in range(steps):
        clock["step"] = step
        timings: dict[str, float] = {}
        idx, stats = timed(timings, "time/select_total_s", stream.next_batch)
        outcomes = []
        for i, explored in zip(idx, stream.last_explored):
            p = prompts[i]
            rewards = (rng.random(group_size) < pass_rate(p, step)).astype(float)
            outcomes.append(GroupOutcome(p.prompt_id, p.text, tuple(rewards), explored=explored))
        m = timed(timings, "time/observe_s", partial(sel.observe, outcomes))
        rec = {"step": float(step), **stats, **m, **timings}
        rec["select/effective_rate"] = effective_rate(outcomes)
        records.append(rec)
    return records


def summarize(records: list[dict[str, float]]) -> dict[str, float]:
    """Compare on equal footing: the policy improves with the step, so effective rates are
    given over the same windows for every selector (first tenth, last half of the run)."""
    n = len(records)
    head, last_half, tail = records[: max(1, n // 10)], records[n // 2 :], records[-max(1, n // 10) :]
    return {
        "eff_head": metric_mean(head, "select/effective_rate"),
        "eff_last_half": metric_mean(last_half, "select/effective_rate"),
        "survival_last_half": metric_mean(last_half, "select/survival_rate"),
        "forced_total": float(sum(r["select/forced"] for r in records)),
        "false_skip": metric_mean(last_half, "estimator/false_skip_rate"),
        "calib_mae_head": metric_mean(head, "estimator/calib_mae"),
        "calib_mae_tail": metric_mean(tail, "estimator/calib_mae"),
        "auc_tail": metric_mean(tail, "estimator/auc_zero_var"),
        "select_s_per_step": metric_mean(records, "time/select_total_s"),
        "observe_s_per_step": metric_mean(records, "time/observe_s"),
    }


COLUMNS = [
    Col("eff_head", "eff. rate, first 10%"),
    Col("eff_last_half", "eff. rate, last 50%"),
    Col("survival_last_half", "survival, last 50%"),
    Col("forced_total", "forced", ".0f"),
    Col("false_skip", "false-skip, last 50%"),
    Col("calib_mae_head", "calib MAE, first 10%"),
    Col("calib_mae_tail", "calib MAE, last 10%"),
    Col("auc_tail", "AUC(zero-var), last 10%"),
    Col("select_s_per_step", "select s/step"),
    Col("observe_s_per_step", "observe s/step"),
    Col("wall_s", "wall s", ".0f"),
]
SelectorNames = names_from(SELECTORS, "selector(s)")


class SimulateConfig(Config):
    """Settings of `python -m depo.bench.simulate` (each a flag of the same name, or `--set name=value`)."""

    selectors: SelectorNames = ("uniform", "depo-paper", "depo", "history", "oracle")
    """Selectors to simulate, one after the other (a comma list of registry names)."""
    steps: int = Field(200, ge=1)
    prompts: int = Field(2000, ge=1)
    """Synthetic prompts in the pool."""
    batch_size: int = Field(32, ge=1)
    """Prompts rolled out per step."""
    group_size: int = Field(8, ge=2)
    seed: int = 0
    freeze_encoder: bool = False
    """DEPO's estimator: frozen encoder + pooled-vector cache."""


def main(argv: list[str] | None = None) -> int:
    args = parse_command(SimulateConfig, argv, prog="python -m depo.bench.simulate", description=__doc__.splitlines()[0])
    torch.set_num_threads(2)
    print(markdown_table([], COLUMNS, name_key="selector"))
    for name in args.selectors:  # a row as each selector finishes (a DEPO one takes minutes)
        t0 = time.perf_counter()
        estimator = {"freeze_encoder": args.freeze_encoder, "seed": args.seed} if name.startswith("depo") else None
        s = summarize(simulate(name, n_prompts=args.prompts, steps=args.steps, batch_size=args.batch_size,
                               group_size=args.group_size, seed=args.seed, estimator=estimator))
        row = {"selector": name, **s, "wall_s": time.perf_counter() - t0}
        print(markdown_row(row, COLUMNS, name_key="selector"), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main, "python -m depo.bench.simulate"))
