"""Retry policy shared by the flows: retry I/O and service hiccups, never bad input."""

from __future__ import annotations

from typing import Any

from genaug.errors import GenaugInputError, ModelFormatError


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: a file that failed validation fails the same way again."""
    try:
        state.result()
    except (GenaugInputError, ModelFormatError, FileNotFoundError):
        return False
    except Exception:
        return True
    return True
