"""Serves the user's Python reward functions as Tandem's remote reward
endpoint (run spec ``reward: {kind: remote, url}``), which rollout workers
call once per prompt group (services/rollout-worker/src/rewards/remote-reward.ts):

    POST {"runId": str, "prompts": [p x G], "completions": [c_1..c_G], "answers": [a x G]}
    ->   {"rewards": [r_1..r_G]}      (r_i a number, or null: see below)

Functions have TRL's signature, ``reward_func(prompts, completions,
**kwargs) -> list[float | None]`` (huggingface/trl ``RewardFunc`` in
``trl/experimental/async_grpo/async_grpo_trainer.py``), and are called the
way TRL's ``AsyncRolloutWorker._score_group`` calls them, as far as the
request allows. All arguments are keywords:

* ``prompts``: by default chat messages, ``[{"role": "user", "content": p}]``
  per completion (TRL: the dataset's ``prompt`` messages; Tandem has only
  the prompt text it sent to vLLM's ``/v1/completions``);
* ``completions``: by default ``[{"role": "assistant", "content": c}]`` per
  completion (TRL's single-turn form);
* ``answers``, plus the same list under each configured alias (e.g.
  ``solution`` for ``trl.rewards.accuracy_reward``): Tandem's counterpart of
  TRL's dataset columns, which TRL passes as kwargs; the prompt store has
  only the answer;
* ``run_id`` (Tandem's, not TRL's).

Not passed, because the request does not carry them: ``completion_ids``
(TRL's completion token ids) and dataset columns other than the answer.
``message_format="text"`` passes ``prompts`` and ``completions`` as plain
strings instead.

Several functions are summed with weight 1, as TRL's AsyncGRPO does
(``AsyncGRPOConfig`` has no ``reward_weights``); ``weights`` is a Tandem
extension. A ``None`` means "not applicable" and contributes nothing (TRL's
nan-aware sum). A completion for which every function returns ``None`` is
unscorable: TRL gives it a NaN reward, advantage 0, and leaves it out of
the group's mean and std. The endpoint answers ``null`` for it; the rollout
worker stores it with reward 0 and ``Trajectory.unscored`` set, and the
trainer applies TRL's rule from that flag
(:attr:`tandem_trainer.batch.Trajectory.unscored`).

Status codes are chosen for the worker's retry rule (5xx and 429 retried,
other 4xx fail the group at once): bad input 400, a function that returns
something invalid (wrong length, not finite) 422 (deterministic: retrying
cannot help), a function that raises 500 and one that runs past the timeout
504 (both possibly transient, e.g. a reward model being restarted).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import importlib
import inspect
import json
import math
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Sequence

from .http_util import HttpError, JsonHandler, QuietServer
from .log import configure_logging, get_logger

RewardFunc = Callable[..., Any]

#: How prompts and completions are handed to reward functions.
MessageFormat = Literal["messages", "text"]
MESSAGE_FORMATS: tuple[str, ...] = ("messages", "text")


class RewardOutputError(ValueError):
    """A reward function returned something that is not a valid reward list."""


def load_reward_function(spec: str) -> RewardFunc:
    """``"package.module:function"`` -> the callable."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"reward function {spec!r}: expected 'module:function'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"reward function {spec!r} is not callable")
    return obj


def _name(func: RewardFunc) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


def check_rewards(func_name: str, values: Any, n: int) -> list[Optional[float]]:
    """Validates one function's output: n finite floats or None."""
    if hasattr(values, "tolist"):
        values = values.tolist()  # numpy arrays, torch tensors
    if not isinstance(values, (list, tuple)):
        raise RewardOutputError(f"reward function {func_name} returned {type(values).__name__}, not a list")
    if len(values) != n:
        raise RewardOutputError(f"reward function {func_name} returned {len(values)} rewards for {n} completions")
    out: list[Optional[float]] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise RewardOutputError(f"reward function {func_name} returned {v!r} at index {i}, not a number")
        if not math.isfinite(float(v)):
            raise RewardOutputError(f"reward function {func_name} returned {v} at index {i}; rewards must be finite")
        out.append(float(v))
    return out


@dataclass
class RewardScorer:
    """The user's reward functions, called as TRL's AsyncGRPO calls them
    (see the module docstring), summed with weight 1 unless ``weights``."""

    funcs: Sequence[RewardFunc]
    #: Per-function weights (a Tandem extension; TRL's AsyncGRPO uses 1 for every function).
    weights: Optional[Sequence[float]] = None
    #: Extra kwarg names that also receive the answers (e.g. "solution").
    answer_aliases: Sequence[str] = field(default_factory=tuple)
    #: "messages" (default): prompts and completions as chat messages
    #: (``[{"role", "content"}]``), the form TRL's AsyncGRPO always passes
    #: (e.g. ``trl.rewards.accuracy_reward`` reads ``completion[0]["content"]``);
    #: "text": plain strings.
    message_format: MessageFormat = "messages"

    def __post_init__(self) -> None:
        if not self.funcs:
            raise ValueError("at least one reward function is required")
        if self.weights is None:
            self.weights = [1.0] * len(self.funcs)
        if len(self.weights) != len(self.funcs):
            raise ValueError(f"{len(self.weights)} reward weights for {len(self.funcs)} reward functions")
        if self.message_format not in MESSAGE_FORMATS:
            raise ValueError(f"message_format: {self.message_format!r} is not one of {', '.join(MESSAGE_FORMATS)}")

    def score(self, prompts: list[str], completions: list[str], answers: list[Optional[str]], run_id: str = "") -> list[Optional[float]]:
        """The summed rewards; None (unscorable) where every function returned None."""
        n = len(completions)
        total = [0.0] * n
        scored = [False] * n
        kwargs: dict[str, Any] = {"answers": answers, "run_id": run_id}
        for alias in self.answer_aliases:
            kwargs[alias] = answers
        p_arg: list[Any] = list(prompts)
        c_arg: list[Any] = list(completions)
        if self.message_format == "messages":
            p_arg = [[{"role": "user", "content": p}] for p in prompts]
            c_arg = [[{"role": "assistant", "content": c}] for c in completions]
        for func, weight in zip(self.funcs, self.weights or []):
            result = func(prompts=p_arg, completions=c_arg, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            for i, v in enumerate(check_rewards(_name(func), result, n)):
                if v is not None:
                    total[i] += weight * v
                    scored[i] = True
        return [t if ok else None for t, ok in zip(total, scored)]


async def _await(awaitable: Any) -> Any:
    return await awaitable


def parse_request(body: Any) -> tuple[str, list[str], list[str], list[Optional[str]]]:
    """Validates the remote reward request; HttpError 400 names the field."""
    if not isinstance(body, dict):
        raise HttpError(400, {"error": "body must be a JSON object with prompts, completions, answers"})

    def strings(key: str, nullable: bool = False) -> list[Any]:
        v = body.get(key)
        if not isinstance(v, list) or not all(isinstance(x, str) or (nullable and x is None) for x in v):
            kind = "strings or nulls" if nullable else "strings"
            raise HttpError(400, {"error": f"{key}: must be a list of {kind}", "field": key})
        return v

    completions = strings("completions")
    prompts = strings("prompts")
    answers = strings("answers", nullable=True) if body.get("answers") is not None else [None] * len(completions)
    if len(prompts) != len(completions) or len(answers) != len(completions):
        raise HttpError(
            400,
            {"error": f"prompts ({len(prompts)}), completions ({len(completions)}) and answers ({len(answers)}) must have the same length"},
        )
    run_id = body.get("runId", "")
    if not isinstance(run_id, str):
        raise HttpError(400, {"error": "runId: must be a string", "field": "runId"})
    return run_id, prompts, completions, answers


class RewardServer:
    """HTTP server around a :class:`RewardScorer`. Binds 127.0.0.1 by default."""

    def __init__(self, scorer: RewardScorer, *, host: str = "127.0.0.1", port: int = 0, timeout_s: float = 30.0, max_workers: int = 16) -> None:
        self.scorer = scorer
        self.timeout_s = timeout_s
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="reward")
        self._log = get_logger("reward-server")
        self.requests = 0
        server = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                if self.path_only in ("/health", "/healthz"):
                    self.send_json(200, {"status": "ok"})
                else:
                    self.send_json(404, {"error": f"no route for GET {self.path_only}"})

            def do_POST(self) -> None:  # noqa: N802
                try:
                    self.read_body()
                    self.send_json(200, server._handle(self.read_json()))
                except HttpError as err:
                    self.send_json(err.status, err.body)

        self._httpd = QuietServer((host, port), Handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def _handle(self, body: Any) -> dict[str, Any]:
        run_id, prompts, completions, answers = parse_request(body)
        self.requests += 1
        future = self._pool.submit(self.scorer.score, prompts, completions, answers, run_id)
        try:
            rewards = future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            # The thread cannot be killed; it finishes in the background.
            self._log.warning("reward functions timed out", timeout_s=self.timeout_s, run_id=run_id)
            raise HttpError(504, {"error": f"reward functions did not finish within {self.timeout_s} s"}) from None
        except RewardOutputError as err:
            raise HttpError(422, {"error": str(err)}) from err
        except Exception as err:
            self._log.warning("reward function raised", error=repr(err), run_id=run_id)
            raise HttpError(500, {"error": f"reward function raised {type(err).__name__}: {err}"}) from err
        return {"rewards": rewards}

    def start(self) -> "RewardServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="reward-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._pool.shutdown(wait=False)


def main(argv: Optional[list[str]] = None) -> None:
    """``python -m tandem_trainer.reward_server --reward mod:fn [--reward mod:fn2 --weights 1,0.5] [--format text]``"""
    p = argparse.ArgumentParser(description="Serve Python reward functions as Tandem's remote reward endpoint.")
    p.add_argument("--reward", action="append", required=True, help="module:function (repeatable)")
    p.add_argument("--weights", default="", help="comma-separated weights, one per --reward")
    p.add_argument("--answer-alias", action="append", default=[], help="extra kwarg name that receives the answers")
    p.add_argument("--format", choices=MESSAGE_FORMATS, default="messages", help="prompts/completions as chat messages (TRL's form) or plain text")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--timeout-s", type=float, default=30.0)
    args = p.parse_args(argv)
    configure_logging()
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    scorer = RewardScorer([load_reward_function(s) for s in args.reward], weights, tuple(args.answer_alias), args.format)
    server = RewardServer(scorer, host=args.host, port=args.port, timeout_s=args.timeout_s).start()
    sys.stdout.write(json.dumps({"event": "listening", "url": server.url}) + "\n")
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    main()
