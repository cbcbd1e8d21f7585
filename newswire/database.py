"""Database URLs: one parser and one redactor for stores and dedup state.

Accepted forms::

    sqlite:///relative/path.db      sqlite:////absolute/path.db
    postgresql://user:password@host:5432/db?options=…
    postgres://…                    postgresql+psycopg://…   (the same as postgresql://)

Any other ``scheme://…`` parses too (a third-party store registers its scheme);
a string without a scheme is a :class:`~newswire.errors.ConfigError` that says
what to write instead. Passwords never leave this module unredacted: every
message, log line and ``url`` attribute uses :func:`redact_url`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newswire.errors import ConfigError, NewswireError, UnavailableError

__all__ = [
    "POSTGRES_SCHEMES",
    "SQLITE",
    "DatabaseURL",
    "connect_error",
    "is_fatal",
    "parse_database_url",
    "redact_url",
]

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
#: Spellings of PostgreSQL's scheme (libpq's two, SQLAlchemy's psycopg 3 dialect).
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")

_SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "sslpassword"})
# key=value conninfo strings (libpq's other form), as they may appear in error text.
_CONNINFO_PASSWORD = re.compile(r"(\b(?:password|sslpassword)\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url(url: str) -> str:
    """*url* with its password (user info or query parameter) replaced by ``***``."""
    if not _SCHEME.match(url):
        return _CONNINFO_PASSWORD.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            host = netloc.rpartition("@")[2]
            netloc = f"{parts.username or ''}:***@{host}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
                query = urlencode(
                    [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                    safe="*",
                )
        if (netloc, query) == (parts.netloc, parts.query):
            return url  # unchanged (urlunsplit would drop the empty host of sqlite:///)
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparsable database URL>"


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL.

    ``scheme`` is canonical (``postgresql`` for all its spellings): the name a
    store registers under in the ``newswire.stores`` entry-point group.
    ``url`` is the URL as given (it may hold a password: never print it);
    ``redacted`` is for messages.
    """

    scheme: str
    url: str

    @property
    def redacted(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact_url(self.url)

    @property
    def path(self) -> str:
        """The file path of a ``sqlite:///PATH`` URL (``sqlite:////abs`` for an absolute one)."""
        if self.scheme != SQLITE:
            raise ConfigError(f"not a sqlite:/// URL: {self.redacted!r}", url=self.redacted)
        return self.url[len("sqlite:///") :]

    @property
    def conninfo(self) -> str:
        """The URL as libpq takes it (``postgresql://…``; SQLAlchemy's dialect suffix dropped)."""
        if self.scheme != POSTGRESQL:
            raise ConfigError(f"not a PostgreSQL URL: {self.redacted!r}", url=self.redacted)
        return POSTGRESQL + self.url[self.url.index("://") :]

    def __str__(self) -> str:
        return self.redacted


def parse_database_url(url: str, *, what: str = "database") -> DatabaseURL:
    """Parse *url* (see the module docstring); *what* names it in errors (``store``…).

    Raises :class:`~newswire.errors.ConfigError` naming the (redacted) value and
    what would be right.
    """
    text = url.strip()
    hint = "use sqlite:///PATH or postgresql://user@host/db"
    if not _SCHEME.match(text):
        shown = redact_url(text)
        if text and "://" not in text and re.search(r"\.(db|sqlite3?)$", text, re.IGNORECASE):
            hint = f"for a SQLite file write sqlite:///{shown}"
        raise ConfigError(f"{what} URL {shown!r} has no scheme: {hint}", url=shown)
    scheme = text.split("://", 1)[0].lower()
    if scheme in POSTGRES_SCHEMES:
        scheme = POSTGRESQL
        try:
            urlsplit(text).port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise ConfigError(
                f"{what} URL {redact_url(text)!r}: {exc}", url=redact_url(text)
            ) from exc
    elif scheme == SQLITE and (not text.startswith("sqlite:///") or len(text) == len("sqlite:///")):
        raise ConfigError(
            f"{what} URL {text!r}: write sqlite:///relative/path or sqlite:////absolute/path",
            url=text,
        )
    return DatabaseURL(scheme, text)


# -- what a failure to connect means -------------------------------------------------------------

#: libpq / server messages of a connection that can never work as configured (SQLSTATE
#: 3D000, 28000, 28P01, 42501, 3F000 — libpq gives no SQLSTATE for a failed connect,
#: so the text is all there is). Everything else — refused, timed out, starting up,
#: shutting down, too many clients — is an outage to wait out.
_FATAL_CONNECT = re.compile(
    r"does not exist|authentication failed|password authentication|no password supplied|"
    r"no pg_hba\.conf entry|permission denied|not permitted to log in|"
    r"invalid (connection option|port|sslmode|integer value)|"
    r"server does not support SSL|unsupported frontend protocol|"
    r"unable to open database file|file is not a database|is not a directory|"
    r"readonly database|read-only file system",
    re.IGNORECASE,
)
_FATAL_STATES = frozenset({"3D000", "28000", "28P01", "42501", "3F000", "42P06"})


def is_fatal(exc: BaseException) -> bool:
    """Whether *exc*, raised connecting to (or setting up) a database, can never heal by waiting.

    True for "does not exist", "authentication failed", "permission denied" and their
    kin; False for unreachable, restarting, overloaded (an outage).
    """
    state = getattr(exc, "sqlstate", None)
    if state in _FATAL_STATES:
        return True
    if isinstance(exc, PermissionError | NotADirectoryError | IsADirectoryError | FileExistsError):
        return True
    return bool(_FATAL_CONNECT.search(str(exc)))


def connect_error(exc: BaseException, what: str, url: str) -> NewswireError:
    """The error to raise for a failure to connect to *url* (redacted): fatal or an outage.

    *what* names the database in the message (``store``, ``dedup state``).
    """
    shown = redact_url(url)
    text = redact_url(str(exc)).strip().replace("\n", " ")
    if is_fatal(exc):
        return ConfigError(f"{what} {shown}: {text}", url=shown)
    return UnavailableError(f"{what} {shown} is unavailable: {text}", url=shown)
