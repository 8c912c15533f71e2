"""``python -m tandem_trainer --entry my_module:build``: the trainer agent.

``build()`` (no arguments) returns a :class:`~tandem_trainer.agent.TrainingSetup`
(model, optimizer, ``train_step(batch)``). Configuration comes from the
environment (``TANDEM_*``, see the README). With ``TANDEM_REWARD_FUNCS`` the
agent also serves those Python reward functions as the run's remote reward
endpoint. Under ``accelerate launch``/``torchrun`` with several processes,
rank 0 talks to Tandem and the other ranks follow it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Optional, cast

from .agent import SingleProcess, TorchDistCollective, TrainerAgent, TrainingSetup
from .config import ConfigError, load_config
from .errors import AgentError
from .log import configure_logging, get_logger
from .reward_server import MessageFormat, RewardScorer, RewardServer, load_reward_function


def _load_entry(spec: str) -> TrainingSetup:
    fn = load_reward_function(spec)  # same "module:attr" loader
    setup = fn()
    if not isinstance(setup, TrainingSetup):
        raise ConfigError(f"--entry {spec}: returned {type(setup).__name__}, expected tandem_trainer.agent.TrainingSetup")
    return setup


def _leave_job_group() -> None:
    """Ranks leave the job's process group together: a rank whose peers
    already exited can abort in the group's destructor at interpreter exit."""
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem_trainer", description="Tandem trainer agent")
    parser.add_argument("--entry", default=os.environ.get("TANDEM_ENTRY", ""), help="module:function returning a TrainingSetup")
    args = parser.parse_args(argv)
    try:
        config = load_config(os.environ)
        if not args.entry:
            raise ConfigError("--entry (or TANDEM_ENTRY): required, e.g. my_training:build")
    except ConfigError as err:
        sys.stderr.write(f"trainer agent: invalid configuration: {err}\n")
        return 2
    configure_logging(config.log_level)
    log = get_logger("main")

    world = int(os.environ.get("WORLD_SIZE", "1"))
    collective = SingleProcess()
    if world > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        collective = TorchDistCollective()

    reward: Optional[RewardServer] = None
    if config.reward is not None and collective.rank == 0:
        rc = config.reward
        scorer = RewardScorer(
            [load_reward_function(f) for f in rc.funcs], list(rc.weights) if rc.weights else None, rc.answer_aliases, cast(MessageFormat, rc.message_format)
        )
        reward = RewardServer(scorer, host=rc.host, port=rc.port, timeout_s=rc.timeout_s).start()
        sys.stdout.write(json.dumps({"event": "reward_endpoint", "url": reward.url}) + "\n")
        sys.stdout.flush()

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal received; stopping after the current step", signal=signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    agent = TrainerAgent(config, _load_entry(args.entry), collective=collective, stop=stop)
    try:
        if collective.rank != 0:
            agent.follow()
            return 0
        report = agent.run()
    except AgentError as err:
        log.error("agent stopped", error=str(err))
        sys.stdout.write(json.dumps({"event": "failed", "error": str(err)}) + "\n")
        return 1
    finally:
        if reward is not None:
            reward.stop()
        if world > 1:
            _leave_job_group()
    sys.stdout.write(json.dumps({"event": "done", **report.__dict__}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
