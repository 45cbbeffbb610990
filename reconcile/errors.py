"""Errors a run reports to a person. Messages never carry the API key."""

from __future__ import annotations


class ReconcileError(Exception):
    """A run cannot go on; the message says why and what to do."""


class ConfigError(ReconcileError):
    pass


class FetchError(ReconcileError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ConcurrentRunError(ReconcileError):
    pass


class PlanFileError(ReconcileError):
    pass


class TransactionError(ReconcileError):
    pass
