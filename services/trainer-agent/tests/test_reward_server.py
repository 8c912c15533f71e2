"""The remote reward endpoint: TRL-signature functions called as TRL calls
them, weights, None and unscorable completions, validation of input and
output, timeouts; status codes chosen for the rollout worker's retry rule."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Iterator

import pytest

from tandem_trainer.reward_server import RewardScorer, RewardServer, load_reward_function
from tests.procs import http_json


def exact(prompts: list[Any], completions: list[Any], answers: list[Any], **kwargs: Any) -> list[float]:
    return [float(c[0]["content"].strip() == a) for c, a in zip(completions, answers)]


def length(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float]:
    return [float(len(c[0]["content"])) for c in completions]


def maybe(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[Any]:
    return [None if c[0]["content"] == "skip" else 1.0 for c in completions]


async def async_reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
    await asyncio.sleep(0)
    return [0.5] * len(completions)


def serve(scorer: RewardScorer, timeout_s: float = 5.0) -> RewardServer:
    return RewardServer(scorer, timeout_s=timeout_s).start()


@pytest.fixture
def server() -> Iterator[RewardServer]:
    s = serve(RewardScorer([exact, length, maybe], [1.0, 0.1, 2.0]))
    yield s
    s.stop()


def body(completions: list[str], answers: list[Any] | None = None) -> dict[str, Any]:
    n = len(completions)
    return {"runId": "r", "prompts": ["p"] * n, "completions": completions, "answers": answers if answers is not None else ["4"] * n}


def test_weighted_sum_with_none_as_not_applicable(server: RewardServer) -> None:
    status, out = http_json("POST", server.url, body(["4", "45", "skip"]))
    assert status == 200
    assert out["rewards"] == [1.0 + 0.1 + 2.0, 0.2 + 2.0, 0.4]


@pytest.mark.parametrize(
    "payload,fragment",
    [
        ([1, 2], "JSON object"),
        ({"prompts": ["p"], "completions": "x", "answers": ["a"]}, "completions"),
        ({"prompts": ["p"], "completions": ["x", "y"], "answers": ["a", "b"]}, "same length"),
        ({"prompts": ["p"], "completions": ["x"], "answers": [3]}, "answers"),
        ({"prompts": ["p"], "completions": ["x"], "runId": 5}, "runId"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(server: RewardServer, payload: Any, fragment: str) -> None:
    status, out = http_json("POST", server.url, payload)
    assert status == 400 and fragment in out["error"]


def test_not_json_is_a_400(server: RewardServer) -> None:
    import urllib.request

    req = urllib.request.Request(server.url, data=b"{nope", method="POST", headers={"content-type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("expected 400")
    except urllib.error.HTTPError as err:
        assert err.code == 400


def test_invalid_function_output_is_a_422_naming_the_function() -> None:
    def short(prompts: list[str], completions: list[str], **kw: Any) -> list[float]:
        return [1.0]

    def nan(prompts: list[str], completions: list[str], **kw: Any) -> list[float]:
        return [float("nan")] * len(completions)

    def text(prompts: list[str], completions: list[str], **kw: Any) -> list[Any]:
        return ["1"] * len(completions)

    for fn, fragment in ((short, "returned 1 rewards for 2"), (nan, "must be finite"), (text, "not a number")):
        s = serve(RewardScorer([fn]))
        try:
            status, out = http_json("POST", s.url, body(["a", "b"]))
            assert status == 422 and fn.__name__ in out["error"] and fragment in out["error"]
        finally:
            s.stop()


def test_raising_function_is_a_500_and_slow_one_a_504() -> None:
    def boom(prompts: list[str], completions: list[str], **kw: Any) -> list[float]:
        raise RuntimeError("reward model down")

    def slow(prompts: list[str], completions: list[str], **kw: Any) -> list[float]:
        time.sleep(1.0)
        return [0.0] * len(completions)

    s = serve(RewardScorer([boom]))
    try:
        status, out = http_json("POST", s.url, body(["a"]))
        assert status == 500 and "reward model down" in out["error"]
    finally:
        s.stop()
    s = serve(RewardScorer([slow]), timeout_s=0.2)
    try:
        status, out = http_json("POST", s.url, body(["a"]))
        assert status == 504
    finally:
        s.stop()


def test_functions_get_chat_messages_and_the_kwargs_tandem_has() -> None:
    """As TRL's AsyncRolloutWorker._score_group calls them: keywords only,
    prompts and completions as chat messages; Tandem's kwargs are the answers
    (and aliases) and run_id; TRL's completion_ids is not in the request."""
    seen: list[dict[str, Any]] = []

    def chat(**kw: Any) -> list[float]:
        seen.append(kw)
        return [float(c[0]["content"] == s) for c, s in zip(kw["completions"], kw["solution"])]

    scorer = RewardScorer([chat, async_reward], answer_aliases=("solution",))
    assert scorer.message_format == "messages"
    assert scorer.score(["q", "q"], ["7", "8"], ["7", "7"], run_id="r1") == [1.5, 0.5]
    (kw,) = seen
    assert set(kw) == {"prompts", "completions", "answers", "solution", "run_id"}
    assert kw["prompts"] == [[{"role": "user", "content": "q"}]] * 2
    assert kw["completions"] == [[{"role": "assistant", "content": "7"}], [{"role": "assistant", "content": "8"}]]
    assert kw["answers"] == kw["solution"] == ["7", "7"] and kw["run_id"] == "r1"


def test_text_format_passes_plain_strings() -> None:
    seen: list[Any] = []

    def plain(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
        seen.append((prompts, completions))
        return [float(len(c)) for c in completions]

    assert RewardScorer([plain], message_format="text").score(["q"], ["abc"], [None]) == [3.0]
    assert seen == [(["q"], ["abc"])]
    with pytest.raises(ValueError, match="message_format"):
        RewardScorer([plain], message_format="chat")  # type: ignore[arg-type]


def test_completions_no_function_scores_are_answered_null() -> None:
    """TRL makes such a completion's reward NaN (advantage 0, out of the
    group's mean/std); the endpoint answers null for it, which the rollout
    worker stores as Trajectory.unscored."""

    def never(prompts: list[Any], completions: list[Any], **kw: Any) -> list[Any]:
        return [None] * len(completions)

    scorer = RewardScorer([maybe, never])
    assert scorer.score(["p", "p"], ["skip", "ok"], [None, None]) == [None, 1.0]
    s = serve(scorer)
    try:
        status, out = http_json("POST", s.url, body(["skip", "ok", "skip"]))
        assert status == 200 and out["rewards"] == [None, 1.0, None]
    finally:
        s.stop()
    # A function that scores 0.0 is a score, not "unscored".
    zero = RewardScorer([never, lambda prompts, completions, **kw: [0.0] * len(completions)])
    assert zero.score(["p"], ["skip"], [None]) == [0.0]


def test_health_and_loader() -> None:
    s = serve(RewardScorer([length]))
    try:
        assert http_json("GET", s.url + "health")[0] == 200
    finally:
        s.stop()
    digit_fraction = load_reward_function("tandem_trainer.examples.rewards:digit_fraction")
    assert digit_fraction([], ["a1"]) == digit_fraction([], [[{"role": "assistant", "content": "a1"}]]) == [0.5]
    with pytest.raises(ValueError, match="module:function"):
        load_reward_function("nocolon")
    with pytest.raises(ValueError, match="2 reward weights for 1 reward functions"):
        RewardScorer([length], [1.0, 2.0])
