"""Work shared between this process and a helper executor, each taking what the other has not begun."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future


class SharedTasks:
    """Tasks shared with a `helper` executor (another process): handed to it, from the end of the list (added ones
    after those), once it has finished `after` (its work before these: a clone's holdout reference), so none waits
    in a busy helper's queue where it could not be taken back; `results()` runs here, from the start, every task
    the helper has not begun, then collects the helper's. A helper that frees up only once `results()` has begun
    is handed nothing: this process is under way (matplotlib loaded) and would wait for the helper's first
    picture, imports and all. The two meet wherever each one's other work leaves them (a clone's main process
    whose helper keeps up never loads matplotlib). Without a helper all run here."""

    def __init__(self, tasks: list[tuple[Callable, tuple]], helper: Executor | None, after: Future | None = None):
        self.tasks, self.helper = list(tasks), helper
        self.handed: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.started = False  # the helper is done with `after`
        self.collecting = False  # results() has begun
        if helper is not None and after is not None:
            after.add_done_callback(self._hand)
        elif helper is not None:
            self._hand(None)

    def _hand(self, _after: Future | None) -> None:
        with self.lock:
            if self.collecting:
                return
            self.started = True
            for index in reversed(range(len(self.tasks))):
                if index not in self.handed and not self._submit(index):
                    break

    def _submit(self, index: int) -> bool:
        function, arguments = self.tasks[index]
        try:
            self.handed[index] = self.helper.submit(function, *arguments)
        except RuntimeError:  # the helper was shut down (a failed clone): the task stays here
            return False
        return True

    def add(self, function: Callable, *arguments) -> None:
        with self.lock:
            self.tasks.append((function, arguments))
            if self.started and not self.collecting:
                self._submit(len(self.tasks) - 1)

    def results(self) -> list:
        with self.lock:
            self.collecting = True
        here = {}
        for index, (function, arguments) in enumerate(self.tasks):
            if index not in self.handed or self.handed[index].cancel():  # nothing is handed once collecting
                here[index] = function(*arguments)
        return [here[index] if index in here else self.handed[index].result() for index in range(len(self.tasks))]
