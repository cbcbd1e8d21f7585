"""Errors of the Kafka layer; every one is a :class:`~newswire.errors.BrokerError`::

    BrokerError                     (newswire.errors) the broker refused or cannot be reached
    ├── BrokerUnreachableError      no broker answered at the bootstrap address in time
    │                               (retriable; the CLI exits 3 with one line)
    ├── CommitFailedError           the group rebalanced before the commit (not retriable:
    │                               the partition's new owner reads those records again)
    └── RecordTooLargeError         a record the broker can never take (not retriable)

The adapters translate their client's exceptions into these, with the client's
own message (never a credential) in the text.
"""

from __future__ import annotations

from newswire.errors import BrokerError

__all__ = [
    "BrokerError",
    "BrokerUnreachableError",
    "CommitFailedError",
    "RecordTooLargeError",
]


class BrokerUnreachableError(BrokerError):
    """No broker answered at ``bootstrap`` within the connect timeout. Retriable."""

    bootstrap: str = ""


class CommitFailedError(BrokerError):
    """The group rebalanced before the commit; the records will be redelivered. Not retriable."""

    retriable = False


class RecordTooLargeError(BrokerError):
    """The record exceeds what the producer or broker accepts. Not retriable."""

    retriable = False
