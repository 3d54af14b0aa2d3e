"""Work shared between this process and a helper executor, each taking what the other has not begun."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future


class SharedTasks:
    """Tasks shared with a `helper` executor (another process): handed to it, from the end of the list (added ones
    after those), once it has finished `after` (its work before these: a clone's holdout reference), so none waits
    in a busy helper's queue where it could not be taken back; `results()` runs here, from the start, every task
    the helper has not been handed, and those it was handed but has begun none of, then collects the helper's.
    A helper that has begun them keeps them all: it has loaded what they need (matplotlib) and this process would
    load it again for the few it could take back. A helper that frees up only once `results()` has begun is
    handed nothing: this process is under way (matplotlib loaded) and would wait for the helper's first picture,
    imports and all. Without a helper all run here."""

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
        begun = any(future.running() or future.done() for future in self.handed.values())
        here = {}
        for index, (function, arguments) in enumerate(self.tasks):
            if index not in self.handed or (not begun and self.handed[index].cancel()):  # none handed from now on
                here[index] = function(*arguments)
        return [here[index] if index in here else self.handed[index].result() for index in range(len(self.tasks))]
