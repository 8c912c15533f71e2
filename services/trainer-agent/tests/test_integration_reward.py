"""(b) Python reward functions served by the agent's reward endpoint, called
by a real rollout worker (run spec ``reward: {kind: remote, url}``): the
rewards that land in the trained batches are exactly the weighted sum of
the functions on the generated completions, and a completion every function
returned None for (the endpoint answers null) trains as ``unscored``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from tandem_trainer.examples.rewards import contains_answer, digit_fraction
from tests.procs import Stack, free_port, read_jsonl
from tests.test_integration_training import PROMPTS, run_spec

#: Every other prompt without an answer: there contains_answer returns None,
#: and so does digit_fraction for a completion without a digit.
REWARD_PROMPTS: list[tuple[str, Optional[str]]] = [(p, a if i % 2 == 0 else None) for i, (p, a) in enumerate(PROMPTS)]


def test_remote_python_reward_lands_in_trained_batches(stack: Stack, tmp_path: Path) -> None:
    run_id = "remote-reward"
    max_steps = 3
    reward_port = free_port()
    url = f"http://127.0.0.1:{reward_port}/"
    spec = run_spec(max_steps, {"kind": "remote", "url": url, "timeoutMs": 5000})
    for prompt, (_, answer) in zip(spec["dataset"]["prompts"], REWARD_PROMPTS):
        if answer is None:
            del prompt["answer"]
    stack.submit(run_id, spec)
    _proc, gen_url = stack.start_receiver("receiver", seed=3)
    stack.register_generator(run_id, "gen-0", gen_url)
    step_log = tmp_path / "steps.jsonl"
    agent = stack.start_agent(
        "trainer",
        run_id,
        tmp_path / "ckpt",
        step_log,
        {
            "TANDEM_REWARD_FUNCS": ",".join(f"tandem_trainer.examples.rewards:{f}" for f in ("digit_fraction", "contains_answer")),
            "TANDEM_REWARD_WEIGHTS": "1.0,0.5",
            "TANDEM_REWARD_PORT": str(reward_port),
            "TANDEM_STEP_LOG_TEXTS": "1",
        },
    )
    assert agent.event("reward_endpoint", 30)["url"] == url
    worker = stack.start_worker(run_id)

    done = agent.event("done", 120)
    assert done["outcome"] == "finished", done
    answers = dict(REWARD_PROMPTS)
    steps = [e for e in read_jsonl(step_log) if e["event"] == "step"]
    assert len(steps) == max_steps
    checked = unscored_seen = 0
    for e in steps:
        for gid, prompt, rewards, unscored, texts in zip(e["groups"], e["prompts"], e["rewards"], e["unscored"], e["texts"]):
            assert len(rewards) == len(unscored) == len(texts) == 4
            n = len(texts)
            scores = list(zip(digit_fraction([prompt] * n, texts), contains_answer([prompt] * n, texts, [answers[prompt]] * n)))
            # Unscored exactly where both functions returned None; such a completion travels with reward 0.
            assert unscored == [d is None and c is None for d, c in scores], (gid, prompt, unscored, texts)
            assert rewards == [(d or 0.0) + 0.5 * (c or 0.0) for d, c in scores], (gid, prompt, rewards, texts)
            checked += n
            unscored_seen += sum(unscored)
    assert checked == max_steps * 2 * 4
    # Both kinds went through (most random completions have no digit; answered prompts are always scored).
    assert 0 < unscored_seen < checked
    # A real signal went through (digit_fraction is positive wherever it applies).
    assert any(r != 0 for e in steps for rs in e["rewards"] for r in rs)
