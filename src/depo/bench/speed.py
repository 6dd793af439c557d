"""Time the estimator's two per-step costs for each training variant.

    python -m depo.bench.speed [--texts math|gym|FILE] [--n 128] [--repeats 5] [--threads 2] [--encoder-path DIR]

For each variant (full fine-tuning; frozen encoder + pooled-vector cache; top-2 layers with the
lower layers' states cached; top-2 without that cache) it reports the median wall time of `predict`
on n prompts and of one `update` on n outcomes. Cached variants' predict is reported cold (first
sight of the prompts: the frozen part runs) and warm (cache hits); in an RL step the update's
prompts were always predicted first, so the update runs warm. Run under
`nice -n 10` on a shared machine; medians damp the noise of other processes.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from depo.config import Config, names_from, parse_command
from depo.errors import DepoError, run_command
from depo.estimator.online import EstimatorConfig, OnlineEstimator
from depo.paths import shared_data_dir
from depo.tasks.gym import preset_tasks
from depo.types import GroupOutcome

VARIANTS = {  # cheapest first, so a long run shows results early
    "frozen+cache": {"freeze_encoder": True},
    "top2": {"train_top_layers": 2},
    "top2-nocache": {"train_top_layers": 2, "cache_lower_layers": False},
    "full": {},
}


def load_texts(source: str, n: int, seed: int = 0) -> list[str]:
    """n prompt texts: MATH problems from the shared data (realistic length), gym questions, or a file."""
    if source == "math":
        data = shared_data_dir()
        if data is None or not (data / "math_train_passrates.parquet").is_file():
            raise DepoError("--texts math needs ../shared/data/math_train_passrates.parquet; use --texts gym")
        problems = pd.read_parquet(data / "math_train_passrates.parquet", columns=["problem"])["problem"]
        if len(problems) < n:
            raise DepoError(f"--texts math: {len(problems)} problems, need {n}")
        return problems.sample(n=n, random_state=seed).tolist()
    if source == "gym":
        return [t.text for t in preset_tasks("mixed", "train", n, seed=seed)]
    path = Path(source)
    if not path.is_file():
        raise DepoError(f"--texts: {source} is neither 'math', 'gym' nor a file")
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if len(lines) < n:
        raise DepoError(f"--texts {source}: {len(lines)} lines, need {n}")
    return lines[:n]


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds of this process (all threads) over `repeats`.

    CPU time barely depends on what else the machine runs, so on a shared CPU it is the better
    figure to compare variants; wall time is what a dedicated machine would see at best.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure(
    texts: list[str],
    *,
    repeats: int = 5,
    max_length: int = 512,
    variants: list[str] | None = None,
    on_result: Callable[[str, dict[str, float]], None] | None = None,
    encoder_path: str | None = None,
) -> dict[str, dict[str, float]]:
    """{variant: {predict_s, predict_cpu_s, update_s, update_cpu_s, (predict_cold_s, ...)}}: medians
    over `repeats` after one warm-up; `on_result(name, row)` is called as each variant finishes."""
    rng = np.random.default_rng(0)
    outcomes = [
        GroupOutcome(f"p{i}", t, tuple(float(r) for r in rng.integers(0, 2, size=8)), tuple(rng.uniform(-1, 0, 8)))
        for i, t in enumerate(texts)
    ]
    results: dict[str, dict[str, float]] = {}
    for name in variants or list(VARIANTS):
        est = OnlineEstimator(EstimatorConfig(encoder_path=encoder_path, max_length=max_length, **VARIANTS[name]))
        row: dict[str, float] = {}
        if est.features.mode != "none":
            row["predict_cold_s"], row["predict_cold_cpu_s"] = _median_time(lambda e=est: e.predict(texts), 1)
        else:
            est.predict(texts)  # warm-up (allocator, kernels)
        row["predict_s"], row["predict_cpu_s"] = _median_time(lambda e=est: e.predict(texts), repeats)
        est.update(outcomes)  # warm-up
        row["update_s"], row["update_cpu_s"] = _median_time(lambda e=est: e.update(outcomes), repeats)
        row["trainable_params"] = float(sum(p.numel() for p in est.trainable_parameters()))
        row["truncated"] = float(est.encoder.truncated_count)
        results[name] = row
        if on_result is not None:
            on_result(name, row)
    return results


VariantNames = names_from(VARIANTS, "variant(s)")


class SpeedConfig(Config):
    """Settings of `python -m depo.bench.speed` (each a flag of the same name, or `--set name=value`)."""

    texts: str = "math"
    """math (the shared MATH problems, realistic length), gym (the mixed preset) or a text file."""
    n: int = Field(128, ge=1)
    """Prompts per predict and outcomes per update."""
    repeats: int = Field(5, ge=1)
    """Timed repeats per cost (the median is reported)."""
    threads: int = Field(2, ge=1)
    """torch CPU threads."""
    max_length: int = Field(512, ge=2)
    """Encoder tokens per prompt."""
    encoder_path: str | None = None
    """A local Hugging Face encoder directory (default: all-MiniLM-L6-v2)."""
    variants: VariantNames = tuple(VARIANTS)
    """Variants to time (a comma list of frozen+cache, top2, top2-nocache, full)."""
    output: Path | None = None
    """Also write the results here as JSON (flag --output or --json)."""


def main(argv: list[str] | None = None) -> int:
    cfg = parse_command(SpeedConfig, argv, prog="python -m depo.bench.speed", description=__doc__.splitlines()[0],
                        aliases={"output": "--json"})
    torch.set_num_threads(cfg.threads)
    texts = load_texts(cfg.texts, cfg.n)
    print(
        f"estimator speed: {cfg.n} prompts ({cfg.texts}), torch threads={cfg.threads}, medians of {cfg.repeats}"
        " (wall s / process CPU s)",
        flush=True,
    )
    print(f"{'variant':<14} {'predict':>15} {'predict cold':>15} {'update':>15} {'trainable':>12}", flush=True)

    def show(name: str, row: dict[str, float]) -> None:
        def pair(key: str) -> str:
            return f"{row[key + '_s']:.2f}/{row[key + '_cpu_s']:.2f}" if key + "_s" in row else "-"

        line = f"{name:<14} {pair('predict'):>15} {pair('predict_cold'):>15} {pair('update'):>15}"
        print(f"{line} {int(row['trainable_params']):>12,}", flush=True)

    results = measure(texts, repeats=cfg.repeats, max_length=cfg.max_length, variants=list(cfg.variants), on_result=show,
                      encoder_path=cfg.encoder_path)
    if cfg.output:
        cfg.output.write_text(json.dumps({"n": cfg.n, "texts": cfg.texts, "threads": cfg.threads, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_command(main, "python -m depo.bench.speed"))
