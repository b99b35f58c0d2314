"""Tensor parallelism: the processes of a group take part in every generate call until none has an episode left.

Two gloo processes run the real RolloutRunner loop over an engine that follows vLLM's tensor-parallel protocol
(`tp_episodes.py`); one finishes after one turn, the other after five. Before the fix, the first left the
loop and the second waited in a gather for it (gloo's 20 s timeout failed it here; on GPUs it hung).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
WORKER = Path(__file__).with_name("tp_episodes.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_finishing_at_different_turns_both_complete(tmp_path):
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank), "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": port, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        cmd = [sys.executable, str(WORKER), str(tmp_path / f"rank{rank}.json")]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for rank, proc in enumerate(procs):
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"rank {rank}: {err[-3000:]}"
    bob, ada = (json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2))
    assert bob["text"] == " </think> \\boxed{Bob}" and bob["actions"] == [] and not bob["truncated"]
    assert ada["actions"] == ["Ada", "Lisbon"] and ada["text"].endswith("</think> \\boxed{Lisbon}") and not ada["truncated"]
    # both took part in every call: 3 turns of a policy call and a simulated-observation call; rank 0 brought
    # nothing after its first, rank 1 nothing to the last (its answer needed no observation)
    assert bob["calls"] == [1, 0, 0, 0, 0, 0] and ada["calls"] == [1, 1, 1, 1, 1, 0]
