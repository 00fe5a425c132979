"""Errors of the service itself: a bad request field, a full queue, a job over its time limit, a lost worker.

They join the library's `EnlargeError` family so the app maps every error a client can meet in one place.
"""

from __future__ import annotations

from enlarge.errors import EnlargeError


class ServiceError(EnlargeError):
    """Base of the errors the service raises around the library's work."""


class RequestError(ServiceError):
    """A request field is missing, contradicts another, or asks for something this server does not offer."""


class QueueFullError(ServiceError):
    """Every worker is busy and the waiting line is full; `retry_after_s` says when to try again."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TimeLimitError(ServiceError):
    """An enlargement ran past the per-request time limit and was stopped."""

    @classmethod
    def after(cls, limit_s: float) -> TimeLimitError:
        """The error for a job stopped at `limit_s`: one message whether it stopped itself or was killed."""
        return cls(f"the enlargement took longer than this server's {limit_s:g} s limit and was stopped; "
                   "ask for a smaller output")


class WorkerLostError(ServiceError):
    """A worker process died during a job (killed from outside, out of memory); the job may be retried."""
