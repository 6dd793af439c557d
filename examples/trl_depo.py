"""DEPO inside TRL's GRPOTrainer: skip prompts whose G answers would all agree, before the rollout.

On the embedded tiny policy (CPU, a few minutes):

    python examples/trl_depo.py --steps 20

With a real chat model on a GPU (prompts become one user message with the natural question):

    python examples/trl_depo.py --model /path/to/Qwen2.5-0.5B-Instruct --steps 200 \
        --batch-prompts 64 --num-generations 8 --max-completion-length 256

On your own math problems (a verl parquet or a JSONL/CSV with problem and answer columns,
rewarded by math-verify; each prompt keeps its "put your final answer within \\boxed{}"):

    python examples/trl_depo.py --model /path/to/Qwen2.5-0.5B-Instruct --data train.parquet ...

Several GPUs: `accelerate launch --num_processes 4 examples/trl_depo.py --model ...`
(every process yields the prompts the main process selected).
"""

from __future__ import annotations

import argparse

import torch
from trl import GRPOConfig

from depo.integrations.trl import DEPOGRPOTrainer
from depo.integrations.trl.tasks import CHAT_INSTRUCTION, task_reward, tasks_dataset
from depo.policy import load_policy
from depo.selection import make_selector
from depo.tasks.gym import preset_tasks
from depo.tasks.math import load_math_tasks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tiny", help="'tiny' (the embedded policy) or a local HF model directory")
    p.add_argument("--preset", default="mixed", help="reasoning-gym task preset: mixed, easy, hard")
    p.add_argument("--data", default=None, metavar="FILE",
                   help="train on this math file instead of the preset (verl parquet, JSONL or CSV with problem and answer)")
    p.add_argument("--selector", default="depo", help="depo, depo-paper, history, mopps or uniform")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-prompts", type=int, default=16, help="distinct prompts per step")
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-completion-length", type=int, default=16)
    p.add_argument("--train-size", type=int, default=5000, help="prompts to train on (of --data: its first N)")
    p.add_argument("--output-dir", default="runs/trl_depo")
    p.add_argument("--seed", type=int, default=0)
    opts = p.parse_args()

    if opts.model == "tiny":
        from depo.policy import build_tiny_policy

        model = str(build_tiny_policy(opts.preset))  # cached after the first build
    else:
        model = opts.model
    # chat models read the natural question as a user message; the tiny policy its compact prompt
    # load_policy, not AutoTokenizer: transformers 5 would rebuild the tiny policy's char tokenizer wrongly
    policy, tokenizer = load_policy(model)
    policy.train()
    chat = bool(tokenizer.chat_template)
    if opts.data:  # math tasks carry their own boxed-answer instruction: keep it (instruction=None)
        tasks, instruction = load_math_tasks(opts.data, limit=opts.train_size), None
    else:
        tasks, instruction = preset_tasks(opts.preset, "train", opts.train_size, seed=0), CHAT_INSTRUCTION
    print(f"{len(tasks)} prompts from {opts.data or 'the ' + opts.preset + ' preset'}")
    # columns: prompt (what the policy reads), text (what the estimator reads), prompt_id
    # TRL tokenizes prompts without special tokens: the tiny policy's separator goes into the text
    dataset = tasks_dataset(tasks, chat=chat, suffix="" if chat else (tokenizer.sep_token or ""), instruction=instruction)

    gpu = torch.cuda.is_available()
    args = GRPOConfig(
        output_dir=opts.output_dir,
        per_device_train_batch_size=opts.batch_prompts * opts.num_generations,
        num_generations=opts.num_generations,
        max_completion_length=opts.max_completion_length,
        max_steps=opts.steps,
        learning_rate=1e-6 if chat else 2e-4,
        logging_steps=1,
        save_steps=max(opts.steps // 2, 1),
        report_to=[],
        seed=opts.seed,
        use_cpu=not gpu,
        bf16=gpu,
    )
    # The difficulty estimator trains online on the rewards; on CPU its fast mode caches the
    # frozen encoder's vectors and trains the trunk and heads only.
    estimator = {"freeze_encoder": not gpu, "seed": opts.seed}  # EstimatorConfig fields (depo, depo-paper)
    selector = make_selector(opts.selector, group_size=opts.num_generations, seed=opts.seed, estimator=estimator)
    trainer = DEPOGRPOTrainer(
        model=policy,
        processing_class=tokenizer,
        reward_funcs=task_reward(tasks),
        args=args,
        train_dataset=dataset,
        selector=selector,
        text_column="text",
        id_column="prompt_id",
        logprobs="always",  # the estimator's distill target (docs/method.md section 2.1, step 4); one extra forward per batch
    )
    trainer.train()  # resume: trainer.train(resume_from_checkpoint=True) restores the selector too
    last = [h for h in trainer.state.log_history if "frac_reward_zero_std" in h][-1]
    print({k: round(v, 3) for k, v in last.items() if k in ("frac_reward_zero_std", "select/survival_rate", "select/effective_rate_total")})


if __name__ == "__main__":
    main()
