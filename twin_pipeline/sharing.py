"""Work shared between this process and a helper executor, each taking what the other has not begun."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future


class SharedTasks:
    """Tasks shared with a `helper` executor (another process), taken from the two ends of one queue. The helper
    is handed the last task once it has finished `after` (its work before these: a clone's holdout reference)
    and the next each time it finishes one, so no task waits in a busy helper's queue where this process could
    not take it back; `results()` runs here, from the front, every task not handed yet, then collects the
    helper's. The two meet wherever each one's other work leaves them (a clone's main process whose helper keeps
    up never loads matplotlib). Without a helper all run here."""

    def __init__(self, tasks: list[tuple[Callable, tuple]], helper: Executor | None, after: Future | None = None):
        self.tasks, self.helper = list(tasks), helper
        self.pending = deque(range(len(self.tasks)))  # not handed, not begun here
        self.handed: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.idle = helper is None  # the helper has nothing of ours in hand and `after` is done
        if helper is not None and after is not None:
            after.add_done_callback(self._hand)
        elif helper is not None:
            self._hand(None)

    def _hand(self, _done) -> None:
        """Hand the helper the last pending task (called when it is free: `after` or its previous task done)."""
        with self.lock:
            self.idle = not self.pending
            if self.idle:
                return
            index = self.pending.pop()
            function, arguments = self.tasks[index]
            try:
                self.handed[index] = future = self.helper.submit(function, *arguments)
            except RuntimeError:  # the helper was shut down (a failed clone): the task stays here
                self.pending.append(index)
                self.idle = True
                return
        future.add_done_callback(self._hand)

    def add(self, function: Callable, *arguments) -> None:
        with self.lock:
            self.tasks.append((function, arguments))
            self.pending.append(len(self.tasks) - 1)
            wake = self.idle and self.helper is not None
        if wake:
            self._hand(None)

    def results(self) -> list:
        here = {}
        while True:
            with self.lock:
                if not self.pending:
                    break
                index = self.pending.popleft()
            function, arguments = self.tasks[index]
            here[index] = function(*arguments)
        return [here[index] if index in here else self.handed[index].result() for index in range(len(self.tasks))]
