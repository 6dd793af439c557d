#!/usr/bin/env bash
# DEPO on verl 0.9.1: Qwen2.5-7B-Instruct on DAPO-Math-17K, the reference release's settings
# (docs/method.md section 2; recipe/depo/run_depo_qwen2_5_7b.sh of the authors' release): 2 nodes x 8 GPUs,
# batch 128 prompts x 8 responses, DAPO's clip-higher / token-mean loss / overlong buffer, no
# dynamic sampling, DEPO warm-up 100 steps then keep p_hat in [0.15, 0.85].
#
# Untested here (no GPU cluster): see docs/verl.md. Start the Ray cluster first (docs/verl.md),
# then on the head node:
#   MODEL_PATH=/models/Qwen2.5-7B-Instruct TRAIN_FILE=/data/dapo-math-17k.parquet \
#   VAL_FILE=/data/aime-2024.parquet bash scripts/verl/run_depo_qwen2.5_7b_dapo17k.sh
# Extra arguments are Hydra overrides appended last (e.g. trainer.total_epochs=1, or --cfg job to
# print the composed config without training).
#
# Environment knobs:
#   MODEL_PATH, TRAIN_FILE, VAL_FILE, CKPTS_DIR   paths (parquet in verl's layout, docs/verl.md)
#   NNODES (2), GPUS_PER_NODE (8)
#   USE_DAPO (true)         false: plain GRPO clip 0.2/0.2 and no overlong penalty
#   SELECTOR (depo-paper)   depo-paper = the release's rule; depo = ours (G-aware, memory, exploration);
#                           uniform = the GRPO baseline through the same trainer
#   ENCODER_PATH            estimator encoder dir (the release used distilbert-base-uncased);
#                           empty = the embedded all-MiniLM-L6-v2
#   ESTIMATOR_DEVICE (driver)  driver | ray (a Ray actor with ESTIMATOR_GPUS GPUs)
set -euo pipefail

MODEL_PATH=${MODEL_PATH:-/path/to/Qwen2.5-7B-Instruct}
TRAIN_FILE=${TRAIN_FILE:-/path/to/dapo-math-17k.parquet}
VAL_FILE=${VAL_FILE:-/path/to/aime-2024.parquet}
CKPTS_DIR=${CKPTS_DIR:-./checkpoints/depo_qwen2.5_7b_dapo17k}
NNODES=${NNODES:-2}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
USE_DAPO=${USE_DAPO:-true}
SELECTOR=${SELECTOR:-depo-paper}
ENCODER_PATH=${ENCODER_PATH:-}
ESTIMATOR_DEVICE=${ESTIMATOR_DEVICE:-driver}
ESTIMATOR_GPUS=${ESTIMATOR_GPUS:-1}
PYTHON=${PYTHON:-python3}

max_prompt_length=$((1024 * 2))
max_response_length=$((1024 * 10))
actor_max_token_len=$((max_prompt_length + max_response_length))
if [[ "$USE_DAPO" == "true" ]]; then
    clip_ratio_high=0.28
    overlong_enable=True
else
    clip_ratio_high=0.2
    overlong_enable=False
fi
depo_overrides=()
if [[ "$SELECTOR" == depo* ]]; then  # the release's warm-up: 100 steps
    depo_overrides+=(+depo.options.warmup_steps=100)
fi
if [[ "$SELECTOR" == depo-paper ]]; then  # the release's window: keep p_hat in [0.15, 0.85]
    depo_overrides+=(+depo.options.lo=0.15 +depo.options.hi=0.85)
fi
if [[ -n "$ENCODER_PATH" ]]; then
    depo_overrides+=("+depo.estimator.config.encoder_path=${ENCODER_PATH}")
fi

exec "$PYTHON" -m depo.integrations.verl.main \
    data.train_files="['${TRAIN_FILE}']" \
    data.val_files="['${VAL_FILE}']" \
    data.prompt_key=prompt \
    data.truncation=left \
    data.val_max_samples=200 \
    data.max_prompt_length=${max_prompt_length} \
    data.max_response_length=${max_response_length} \
    data.train_batch_size=128 \
    data.filter_overlong_prompts=false \
    actor_rollout_ref.rollout.n=8 \
    actor_rollout_ref.model.path="${MODEL_PATH}" \
    actor_rollout_ref.model.use_remove_padding=true \
    actor_rollout_ref.model.enable_gradient_checkpointing=true \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.optim.lr_warmup_steps=10 \
    actor_rollout_ref.actor.optim.weight_decay=0.1 \
    actor_rollout_ref.actor.ppo_mini_batch_size=64 \
    actor_rollout_ref.actor.fsdp_config.param_offload=true \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=true \
    actor_rollout_ref.actor.clip_ratio_low=0.2 \
    actor_rollout_ref.actor.clip_ratio_high=${clip_ratio_high} \
    actor_rollout_ref.actor.clip_ratio_c=10.0 \
    actor_rollout_ref.actor.entropy_coeff=0 \
    actor_rollout_ref.actor.grad_clip=1.0 \
    actor_rollout_ref.actor.loss_agg_mode=token-mean \
    actor_rollout_ref.actor.ulysses_sequence_parallel_size=2 \
    actor_rollout_ref.actor.use_dynamic_bsz=true \
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu=${actor_max_token_len} \
    actor_rollout_ref.actor.use_kl_loss=false \
    actor_rollout_ref.actor.kl_loss_coef=0.0 \
    actor_rollout_ref.ref.fsdp_config.param_offload=true \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.7 \
    actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
    actor_rollout_ref.rollout.enable_chunked_prefill=true \
    actor_rollout_ref.rollout.max_num_batched_tokens=13000 \
    actor_rollout_ref.rollout.temperature=1.0 \
    actor_rollout_ref.rollout.top_p=1.0 \
    actor_rollout_ref.rollout.top_k=-1 \
    actor_rollout_ref.rollout.val_kwargs.temperature=1.0 \
    actor_rollout_ref.rollout.val_kwargs.top_p=0.7 \
    actor_rollout_ref.rollout.val_kwargs.top_k=-1 \
    actor_rollout_ref.rollout.val_kwargs.do_sample=true \
    actor_rollout_ref.rollout.val_kwargs.n=1 \
    actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=true \
    actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=${actor_max_token_len} \
    algorithm.adv_estimator=grpo \
    algorithm.use_kl_in_reward=false \
    algorithm.kl_ctrl.kl_coef=0.0 \
    algorithm.filter_groups.enable=false \
    reward.reward_manager.name=dapo \
    +reward.reward_kwargs.max_resp_len=${max_response_length} \
    +reward.reward_kwargs.overlong_buffer_cfg.enable=${overlong_enable} \
    +reward.reward_kwargs.overlong_buffer_cfg.len=$((1024 * 4)) \
    +reward.reward_kwargs.overlong_buffer_cfg.penalty_factor=1.0 \
    +reward.reward_kwargs.overlong_buffer_cfg.log=false \
    depo.selector=${SELECTOR} \
    depo.reward_key=acc \
    depo.estimator.device=${ESTIMATOR_DEVICE} \
    depo.estimator.num_gpus=${ESTIMATOR_GPUS} \
    "${depo_overrides[@]}" \
    trainer.project_name=verl-depo \
    trainer.experiment_name=depo_qwen2.5_7b_dapo17k \
    trainer.logger="['console','wandb']" \
    trainer.n_gpus_per_node=${GPUS_PER_NODE} \
    trainer.nnodes=${NNODES} \
    trainer.val_before_train=true \
    trainer.test_freq=100 \
    trainer.save_freq=100 \
    trainer.total_epochs=10 \
    trainer.default_local_dir="${CKPTS_DIR}" \
    "$@"
