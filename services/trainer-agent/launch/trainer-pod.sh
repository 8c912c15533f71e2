#!/usr/bin/env bash
# Entry point of the trainer pod: the training job under `accelerate launch`,
# one process per GPU; rank 0 talks to Tandem's control plane.
#
# Either a TRL script that uses tandem_trainer.trl_integration.TandemAsyncGRPOTrainer:
#   TANDEM_TRL_SCRIPT=/workspace/train.py  launch/trainer-pod.sh [script args...]
# or the plain agent with a torch entry point (module:function -> TrainingSetup):
#   TANDEM_ENTRY=my_training:build          launch/trainer-pod.sh
#
# Required: TANDEM_SERVER (control plane gRPC host:port), TANDEM_RUN_ID.
# The pod must accept connections on TANDEM_TRANSFER_PORT: the control
# plane's setting of the same name (default 29500), where the trainer hosts
# the weight-transfer rendezvous that generators join.
set -euo pipefail

: "${TANDEM_SERVER:?TANDEM_SERVER (host:port of the control plane gRPC API) is required}"
: "${TANDEM_RUN_ID:?TANDEM_RUN_ID is required}"

if [ -z "${NUM_PROCESSES:-}" ]; then
  NUM_PROCESSES="$(nvidia-smi -L 2>/dev/null | wc -l || true)"
  [ "${NUM_PROCESSES:-0}" -ge 1 ] 2>/dev/null || NUM_PROCESSES=1
fi
export TANDEM_TRAINER_ID="${TANDEM_TRAINER_ID:-${POD_NAME:-$(hostname)}-$$}"
# The address generators use to reach this pod (downward API status.podIP).
export TANDEM_TRANSFER_LOCAL_ADDRESS="${TANDEM_TRANSFER_LOCAL_ADDRESS:-${POD_IP:-}}"
export TANDEM_TRANSFER_BACKEND="${TANDEM_TRANSFER_BACKEND:-vllm-nccl}"
export TANDEM_CHECKPOINT_DIR="${TANDEM_CHECKPOINT_DIR:-/checkpoints/${TANDEM_RUN_ID}}"

# torch.distributed's default rendezvous port is also 29500, the control
# plane's default transfer port: keep the job's own process group elsewhere.
MAIN_PORT="${MAIN_PROCESS_PORT:-29600}"
if [ "$MAIN_PORT" = "${TANDEM_TRANSFER_PORT:-29500}" ]; then
  echo "trainer-pod: MAIN_PROCESS_PORT must differ from TANDEM_TRANSFER_PORT ($MAIN_PORT)" >&2
  exit 2
fi

accel=(--num_processes "$NUM_PROCESSES" --main_process_port "$MAIN_PORT")
# shellcheck disable=SC2206 # ACCELERATE_ARGS is a list of extra flags, split on purpose
accel+=(${ACCELERATE_ARGS:-})
if [ -n "${TANDEM_TRL_SCRIPT:-}" ]; then
  exec accelerate launch "${accel[@]}" "$TANDEM_TRL_SCRIPT" "$@"
fi
: "${TANDEM_ENTRY:?set TANDEM_TRL_SCRIPT (a TRL script) or TANDEM_ENTRY (module:function for the plain agent)}"
exec accelerate launch "${accel[@]}" -m tandem_trainer --entry "$TANDEM_ENTRY" "$@"
