"""The one error hierarchy of videomemory.

Every error a user can meet is a ``VideoMemoryError`` with a message that says what went wrong
and what to do about it. Library code raises these; the CLI prints ``str(error)`` and the gRPC
server maps each class to a status code in exactly one table (``status`` names the code, so that
this module does not import grpc).
"""

from __future__ import annotations


class VideoMemoryError(Exception):
    """Base class: an error with a message a person can act on."""

    status: str = "INTERNAL"


class InvalidArgument(VideoMemoryError):
    """A request or setting is malformed or out of range."""

    status = "INVALID_ARGUMENT"


class InvalidVideo(InvalidArgument):
    """The input cannot be decoded as a usable video (corrupt, truncated, no video, bad size)."""

    def __init__(self, source: str, reason: str, hint: str = "") -> None:
        self.source = source
        self.reason = reason
        self.hint = hint
        text = f"{source}: {reason}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class BudgetTooSmall(InvalidArgument):
    """A token budget is below what the codec can possibly spend (anchors are not optional)."""


class NotFound(VideoMemoryError):
    """A named resource (video, frame, file) does not exist for this caller."""

    status = "NOT_FOUND"


class FailedPrecondition(VideoMemoryError):
    """The system is not in a state to do this (e.g. no model configured for text queries)."""

    status = "FAILED_PRECONDITION"


class PermissionDenied(VideoMemoryError):
    """The caller may not touch this resource or path."""

    status = "PERMISSION_DENIED"


class DataLoss(VideoMemoryError):
    """Stored data is missing or damaged (a bug or a storage fault); re-ingesting the video repairs it."""

    status = "DATA_LOSS"


class DeadlineExceeded(VideoMemoryError):
    """The caller's deadline passed before the work could be done; nothing was changed."""

    status = "DEADLINE_EXCEEDED"


class Cancelled(VideoMemoryError):
    """The caller went away (cancelled, or its deadline passed) and the work was stopped."""

    status = "CANCELLED"
