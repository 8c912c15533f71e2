"""Tandem trainer agent: the Python side of Tandem's trainer protocol.

It runs in the trainer pod next to the training loop (plain torch or TRL's
AsyncGRPOTrainer): it pulls the batch of each step from the control plane,
acks it once trained and checkpointed, reports the weights it holds, and
broadcasts them to the generators when the control plane says so.

Modules are small and import torch/grpc only where needed; TRL and vLLM are
imported lazily (see ``trl_integration`` and ``transfer_group``) so that the
package works, and is tested, without either.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
