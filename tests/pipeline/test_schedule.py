"""run_tasks: each task after the ones it waits for, the most-waited-on first, at most N at once, failures raised."""

import threading
import time

import pytest

from coa.pipeline.schedule import Task, run_tasks


def recorder():
    log: list[tuple[str, str]] = []
    lock = threading.Lock()
    running = {"now": 0, "most": 0}

    def task(key: str, after: tuple[str, ...] = (), seconds: float = 0.05, fail: bool = False) -> Task:
        def run() -> None:
            with lock:
                running["now"] += 1
                running["most"] = max(running["most"], running["now"])
                log.append(("start", key))
            time.sleep(seconds)
            with lock:
                running["now"] -= 1
                log.append(("end", key))
            if fail:
                raise RuntimeError(f"{key} failed")
        return Task(key, run, after)

    return task, log, running


def test_one_worker_runs_the_most_waited_on_task_first_then_list_order():
    task, log, _ = recorder()
    run_tasks([task("leaf"), task("root"), task("child", ("root",)), task("grandchild", ("child",))], workers=1)
    assert [k for what, k in log if what == "start"] == ["root", "child", "leaf", "grandchild"]


def test_two_workers_never_start_a_task_before_its_parent_ends_and_run_two_at_once():
    task, log, running = recorder()
    tasks = [task("a"), task("b", seconds=0.2), task("a1", ("a",)), task("a2", ("a",)), task("a1x", ("a1",))]
    run_tasks(tasks, workers=2)
    position = {entry: i for i, entry in enumerate(log)}
    for t in tasks:
        for parent in t.after:
            assert position[("end", parent)] < position[("start", t.key)]
    assert running["most"] == 2


def test_a_failure_starts_nothing_new_lets_the_running_finish_and_is_raised():
    task, log, _ = recorder()
    tasks = [task("bad", fail=True), task("slow", seconds=0.3), task("after_bad", ("bad",)), task("later", ("slow",))]
    with pytest.raises(RuntimeError, match="bad failed"):
        run_tasks(tasks, workers=2)
    assert ("end", "slow") in log and ("start", "after_bad") not in log and ("start", "later") not in log


def test_waiting_for_an_unknown_task_is_refused():
    task, _, _ = recorder()
    with pytest.raises(ValueError, match="unknown"):
        run_tasks([task("a", ("nope",))], workers=2)
