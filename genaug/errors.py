"""Exceptions raised for bad input, each naming the file, the column, what was expected and found.

Every error carries the same four fields so batch jobs can write them to a quarantine
``<file>.reason.json`` without parsing messages (see :meth:`GenaugInputError.to_dict`).
"""

from __future__ import annotations

from typing import Any


class GenaugError(Exception):
    """Base class for every error genaug raises on purpose."""


class GenaugInputError(GenaugError, ValueError):
    """Input data that genaug cannot use; says where and why."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        expected: Any = None,
        found: Any = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.column = None if column is None else str(column)
        self.expected = expected
        self.found = found
        self.reason = message
        super().__init__(self._format(message))

    def _format(self, message: str) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file!r}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = (", ".join(where) + ": " if where else "") + message
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}; found {self.found})"
        return text

    def with_file(self, file: str | None) -> GenaugInputError:
        """Return a copy of this error that names ``file`` (used once the caller knows it)."""
        if file is None or self.file is not None:
            return self
        return type(self)(
            self.reason, file=file, column=self.column, expected=self.expected, found=self.found
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: ``file``, ``column``, ``expected``, ``found``, ``error``."""
        return {
            "file": self.file,
            "column": self.column,
            "expected": None if self.expected is None else str(self.expected),
            "found": None if self.found is None else str(self.found),
            "error": type(self).__name__,
            "message": str(self),
        }


class EmptyInputError(GenaugInputError):
    """A file or frame with no rows or no columns."""


class CorruptFileError(GenaugInputError):
    """A file that cannot be decoded in the format its name claims."""


class UnsupportedFormatError(GenaugInputError):
    """A file whose extension genaug does not read."""


class CSVFormatError(GenaugInputError):
    """A CSV that parses but is malformed: wrong delimiter, missing header, ragged rows."""


class MissingColumnError(GenaugInputError):
    """A column the model was trained on is absent."""


class ExtraColumnError(GenaugInputError):
    """A column the model does not know is present."""


class DuplicateColumnError(GenaugInputError):
    """The same column name appears more than once."""


class DtypeError(GenaugInputError):
    """A column's values have the wrong type (e.g. text in a numeric column)."""


class UnseenCategoryError(GenaugInputError):
    """A categorical column holds a level the model never saw."""


class AllMissingError(GenaugInputError):
    """A column in which every value is missing."""


class NonFiniteError(GenaugInputError):
    """A numeric column holds +/-inf (NaN is allowed and means missing)."""


class ConstantColumnError(GenaugInputError):
    """A column with a single value in training: it carries no information."""


class ModelFormatError(GenaugError):
    """A saved model folder that is missing files, tampered with, or of an unknown version."""


class TrackingUnavailableError(GenaugError):
    """The MLflow tracking store cannot be reached or written (bad URI, locked or missing DB)."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = uri
        self.reason = reason
        super().__init__(
            f"MLflow tracking store {uri!r} is unavailable: {reason} "
            "(check MLFLOW_TRACKING_URI; nothing was processed)"
        )


class CorruptImageError(CorruptFileError):
    """An image file that pillow cannot decode: truncated, damaged, or not an image at all."""


class ImageSizeError(GenaugInputError):
    """An image whose height x width differs from the others (or from the model's)."""


class ImageShapeError(GenaugInputError):
    """An image array of the wrong shape, channel count or value range."""


class LabelsFileError(GenaugInputError):
    """A labels CSV for an image folder that is malformed or names files that do not exist."""
