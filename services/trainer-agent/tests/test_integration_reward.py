"""(b) Python reward functions served by the agent's reward endpoint, called
by a real rollout worker (run spec ``reward: {kind: remote, url}``): the
rewards that land in the trained batches are exactly the weighted sum of
the functions on the generated completions."""

from __future__ import annotations

from pathlib import Path

from tandem_trainer.examples.rewards import contains_answer, digit_fraction, length_penalty
from tests.procs import Stack, free_port, read_jsonl
from tests.test_integration_training import PROMPTS, run_spec


def test_remote_python_reward_lands_in_trained_batches(stack: Stack, tmp_path: Path) -> None:
    run_id = "remote-reward"
    max_steps = 3
    reward_port = free_port()
    url = f"http://127.0.0.1:{reward_port}/"
    stack.submit(run_id, run_spec(max_steps, {"kind": "remote", "url": url, "timeoutMs": 5000}))
    _proc, gen_url = stack.start_receiver("receiver", seed=3)
    stack.register_generator(run_id, "gen-0", gen_url)
    step_log = tmp_path / "steps.jsonl"
    agent = stack.start_agent(
        "trainer",
        run_id,
        tmp_path / "ckpt",
        step_log,
        {
            "TANDEM_REWARD_FUNCS": ",".join(
                f"tandem_trainer.examples.rewards:{f}" for f in ("digit_fraction", "contains_answer", "length_penalty")
            ),
            "TANDEM_REWARD_WEIGHTS": "1.0,0.5,0.25",
            "TANDEM_REWARD_PORT": str(reward_port),
            "TANDEM_STEP_LOG_TEXTS": "1",
        },
    )
    assert agent.event("reward_endpoint", 30)["url"] == url
    worker = stack.start_worker(run_id)

    done = agent.event("done", 120)
    assert done["outcome"] == "finished", done
    answers = {p: a for p, a in PROMPTS}
    steps = [e for e in read_jsonl(step_log) if e["event"] == "step"]
    assert len(steps) == max_steps
    checked = 0
    for e in steps:
        for gid, prompt, rewards, texts in zip(e["groups"], e["prompts"], e["rewards"], e["texts"]):
            assert len(rewards) == len(texts) == 4
            n = len(texts)
            expected = [
                d + 0.5 * (c or 0.0) + 0.25 * p
                for d, c, p in zip(digit_fraction([prompt] * n, texts), contains_answer([prompt] * n, texts, [answers[prompt]] * n), length_penalty([prompt] * n, texts))
            ]
            assert rewards == expected, (gid, prompt, rewards, texts)
            checked += n
    assert checked == max_steps * 2 * 4
    # A real signal went through (length_penalty is non-zero for any non-empty text).
    assert any(r != 0 for e in steps for rs in e["rewards"] for r in rs)
