"""Tasks that wait for others (a stage for its parent, an evaluation for its row's last stage), run a few at once."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One unit of the pipeline.

    Args:
        key: unique name (a stage path, or "eval:" + a row's).
        run: does the work (in a worker thread when several run at once; the work itself is a child process).
        after: keys of the tasks that must finish first.
    """

    key: str
    run: Callable[[], None]
    after: tuple[str, ...] = ()


def run_tasks(tasks: list[Task], workers: int) -> None:
    """Runs every task once the tasks it comes `after` have finished, at most `workers` at once.

    Among ready tasks the one with the most tasks waiting on it (directly or not) starts first, then list order, so
    the tree's long branch is never left for last. One worker runs them in order in this thread. The first failure
    starts nothing new; the tasks already running finish, then the failure is raised.
    """
    unknown = {a for t in tasks for a in t.after} - {t.key for t in tasks}
    if unknown:
        raise ValueError(f"tasks wait for unknown tasks: {sorted(unknown)}")
    order = sorted(tasks, key=lambda t: -len(waiting_on(t.key, tasks)))
    if workers <= 1:
        for task in order:
            task.run()
        return
    done: set[str] = set()
    with ThreadPoolExecutor(workers) as pool:
        running: dict[Future, Task] = {}
        pending = list(order)
        while pending or running:
            ready = [t for t in pending if set(t.after) <= done][: workers - len(running)]
            for task in ready:
                pending.remove(task)
                running[pool.submit(task.run)] = task
            if not running:
                raise ValueError(f"tasks wait for each other: {[t.key for t in pending]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                if future.exception() is not None:
                    pending.clear()
                    wait(running)
                    raise future.exception()
                done.add(task.key)


def waiting_on(key: str, tasks: list[Task]) -> set[str]:
    """Keys of the tasks that wait for `key`, directly or through others.

    >>> sorted(waiting_on("a", [Task("a", print), Task("b", print, ("a",)), Task("c", print, ("b",))]))
    ['b', 'c']
    """
    found: set[str] = set()
    frontier = {key}
    while frontier:
        frontier = {t.key for t in tasks if set(t.after) & frontier} - found
        found |= frontier
    return found
