"""Errors raised by newswire.

The tree (``retriable`` says whether trying the same thing again may succeed)::

    NewswireError                      root of every newswire error
    ├── ConfigError                    bad settings or CLI arguments          (not retriable)
    ├── ValidationError                one input document/record is invalid   (not retriable)
    │   └── InvalidURLError            a URL is not an absolute http(s) URL
    ├── SerdeError                     bytes cannot be decoded / record encoded (not retriable)
    │   └── UnknownSchemaError         the writer schema's fingerprint or registry id is unknown
    ├── RegistryError                  the schema registry refused a request: incompatible
    │                                  schema, bad credentials                (not retriable)
    ├── BrokerError                    the Kafka broker cannot be reached or refused a request
    │                                  (retriable unless said otherwise)
    ├── StoreError                     the database refused or failed         (see ``retriable``)
    ├── UnavailableError               a resource the stage needs is down: retried without
    │                                  limit (capped backoff), never dead-lettered  (retriable)
    └── HandlerError                   a consumer's handler failed            (see ``retriable``)
        └── RetriableError             raise it from a handler to ask for a retry with backoff

Errors carry their context as keyword attributes (``field``, ``url``, ``topic``…)
so that reports and DLQ headers can name the record and the reason.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BrokerError",
    "ConfigError",
    "HandlerError",
    "InvalidURLError",
    "NewswireError",
    "RegistryError",
    "RetriableError",
    "SerdeError",
    "StoreError",
    "UnavailableError",
    "UnknownSchemaError",
    "ValidationError",
]


class NewswireError(Exception):
    """Root of all newswire errors."""

    retriable: bool = False

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = context
        for key, value in context.items():
            setattr(self, key, value)


class ConfigError(NewswireError):
    """Settings or command-line arguments are invalid. Not retriable."""


class ValidationError(NewswireError):
    """An input document or record is invalid; ``field`` names the culprit. Not retriable."""

    field: str = ""


class InvalidURLError(ValidationError):
    """A URL is not an absolute http(s) URL. Not retriable."""


class SerdeError(NewswireError):
    """Bytes could not be decoded or a record could not be encoded. Not retriable."""


class UnknownSchemaError(SerdeError):
    """The writer schema named by a record's fingerprint or id is unknown. Not retriable."""


class RegistryError(NewswireError):
    """The schema registry refused a request (an incompatible schema, bad credentials).

    Not retriable: the registry's answer will not change by itself. A registry
    that cannot be reached raises :class:`UnavailableError` instead.
    """


class BrokerError(NewswireError):
    """The broker cannot be reached or refused a request. Retriable."""

    retriable = True


class StoreError(NewswireError):
    """The database failed; ``retriable`` tells an outage from a refused value."""

    def __init__(self, message: str, *, retriable: bool = False, **context: Any) -> None:
        super().__init__(message, **context)
        self.retriable = retriable


class UnavailableError(NewswireError):
    """A resource the stage depends on (database, service) is down or unreachable.

    Not the record's fault: the runtime retries the batch with capped
    exponential backoff for as long as it takes, commits nothing meanwhile and
    never sends the records to the DLQ.
    """

    retriable = True


class HandlerError(NewswireError):
    """A consumer's handler failed on a record. Not retriable unless a subclass says so."""


class RetriableError(HandlerError):
    """Raised by a handler for a transient failure: the runtime retries with backoff."""

    retriable = True
