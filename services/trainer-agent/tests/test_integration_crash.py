"""(c) SIGKILL the trainer mid-step (batch pulled, not acked, not
checkpointed). After a restart it resumes from its checkpoint, the
un-acked batch is served again (``reserved``) and trained once, the weight
sync recovers (new transfer group), and the ledger shows no group trained
twice."""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

from tests.procs import Stack, http_json, read_jsonl, wait_until
from tests.test_integration_training import run_spec, trainer_checksums

HANG_STEP = 2


def test_killed_mid_step_resumes_without_training_twice(stack: Stack, tmp_path: Path) -> None:
    run_id = "crash-resume"
    max_steps = 7
    stack.submit(run_id, run_spec(max_steps, {"kind": "regex", "pattern": "[a-z]"}))
    receivers = [stack.start_receiver(f"receiver-{i}", seed=i + 1) for i in range(2)]
    for i, (_p, url) in enumerate(receivers):
        stack.register_generator(run_id, f"gen-{i}", url)
    ckpt, step_log, marker = tmp_path / "ckpt", tmp_path / "steps.jsonl", tmp_path / "hang.json"
    hook = {"TINY_GRPO_HANG_AT_STEP": str(HANG_STEP), "TINY_GRPO_MARKER": str(marker)}
    first = stack.start_agent("trainer-1", run_id, ckpt, step_log, hook)
    stack.start_worker(run_id)

    wait_until(marker.exists, 90, "the trainer to start training the hang step")
    served = json.loads(marker.read_text())
    assert served["step"] == HANG_STEP and not served["reserved"]
    first.kill(signal.SIGKILL)
    first.wait(10)
    status = stack.run(run_id)["status"]
    assert int(status["trainerStep"]) == HANG_STEP, "the killed step must not be acked"
    assert [e["step"] for e in read_jsonl(step_log) if e["event"] == "step"] == list(range(HANG_STEP))

    second = stack.start_agent("trainer-2", run_id, ckpt, step_log, hook)
    done = second.event("done", 120)
    assert done["outcome"] == "finished", done
    assert done["resumed_from"] == HANG_STEP
    assert done["steps_trained"] == list(range(HANG_STEP, max_steps))

    log = read_jsonl(step_log)
    steps = [e for e in log if e["event"] == "step"]
    assert [e["step"] for e in steps] == list(range(max_steps))
    resumed = steps[HANG_STEP]
    # The batch that was in training when the trainer died came back unchanged, flagged reserved.
    assert resumed["reserved"] and resumed["trained_now"]
    assert sorted(resumed["groups"]) == sorted(served["groups"])
    # No group trained twice, and the ledger agrees with what the trainer trained.
    all_groups = [g for e in steps for g in e["groups"]]
    assert not [g for g, n in Counter(all_groups).items() if n > 1]
    run = wait_until(lambda: (r := stack.run(run_id))["status"]["phase"] == "Succeeded" and r, 20, "run to succeed")
    assert int(run["status"]["ledger"]["trained"]) == len(all_groups) == max_steps * 2
    states = stack.group_states(run_id)
    assert {g for g, s in states.items() if s == "trained"} == set(all_groups)

    # Weight sync recovered after the restart: the generators' latest weights
    # are the trainer's, bit for bit, at a version trained after the crash.
    sums = trainer_checksums(log)
    latest = []
    for _p, url in receivers:
        body = http_json("GET", url + "/tandem/checksum")[1]
        assert body["history"], "receiver never got weights"
        for h in body["history"]:
            assert h["sha256"] == sums[h["policy_version"]]
        latest.append(body["history"][-1]["policy_version"])
    assert max(latest) > HANG_STEP, latest
    sent_after = [e for e in log if e["event"] == "weights_sent" and e["pid"] == second.popen.pid]
    assert any(e["ok"] and e["group_formed"] for e in sent_after), "the restarted trainer never re-formed the group"
