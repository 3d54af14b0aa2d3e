"""The errors a user can meet, one hierarchy: the CLI maps each class to an exit code, the Dagster layer maps any
`TwinError` to a failure naming the file, and nothing user-facing ends as a bare traceback."""

from __future__ import annotations

import os


class TwinError(Exception):
    """A problem the user can act on: one line, naming the file, argument or column it is about."""

    exit_code = 1

    def __init__(self, source: str | os.PathLike | None, problem: str):
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}" if self.source else problem)

    def naming(self, source: str | os.PathLike | None) -> TwinError:
        """The same error about `source` (a file), unless it already names something more precise."""
        if self.source is not None or source is None:
            return self
        named = type(self).__new__(type(self))
        TwinError.__init__(named, source, self.problem)
        return named


class TwinInputError(TwinError, ValueError):
    """The input file or an argument is unusable as given (exit code 2)."""

    exit_code = 2


class PrivacyLimitError(TwinError):
    """Protection cannot reach its target within the user's limits (k, suppression cap): the data is fine, the
    request is too strict for it (exit code 3)."""

    exit_code = 3


class NotFittedError(TwinError, RuntimeError):
    """A model was used before `fit` (or `load`)."""

    exit_code = 1
