"""Two trainer processes (the shape `accelerate launch` gives a multi-GPU
pod): rank 0 talks to Tandem, rank 1 follows it over torch.distributed
(gloo here) and trains the same steps."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.fake_control_plane import FakeControlPlane
from tests.procs import PACKAGE_ROOT, PYTHON, free_port


def test_rank_one_follows_rank_zero(tmp_path: Path) -> None:
    cp = FakeControlPlane(max_steps=3, batch_groups=2, group_size=2).start()
    try:
        cp.fill(range(3))
        base = {
            **os.environ,
            "TANDEM_SERVER": cp.address,
            "TANDEM_RUN_ID": "run-1",
            "TANDEM_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
            "TANDEM_TRANSFER_BACKEND": "gloo",
            "TANDEM_PULL_SLICE_MS": "50",
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(free_port()),
        }
        procs = [
            subprocess.Popen(
                [PYTHON, "-m", "tandem_trainer", "--entry", "tandem_trainer.examples.tiny_grpo:build"],
                env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
                cwd=PACKAGE_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for r in range(2)
        ]
        outs = []
        for p in procs:
            try:
                outs.append(p.communicate(timeout=120))
            finally:
                if p.poll() is None:
                    p.kill()
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
        assert '"outcome": "finished"' in outs[0][0]
        assert outs[1][1].count("step trained as a follower") == 3
        assert cp.acks == [0, 1, 2] and len(cp.hellos) == 1  # only rank 0 attaches
    finally:
        cp.stop()
