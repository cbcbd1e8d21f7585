"""Settings, from environment variables ``NEWSWIRE_<SECTION>__<FIELD>`` (pydantic-settings).

The kernel's sections are ``kafka``, ``producer``, ``runner`` and ``metrics``
(``NEWSWIRE_KAFKA__BOOTSTRAP=kafka:9092``). Every plug-in — consumer, source or
store, built-in or not — may declare its own pydantic ``settings_model``,
loaded from ``NEWSWIRE_<NAME>__<FIELD>`` (``NEWSWIRE_STORE__URL`` for the
``store`` consumer, ``NEWSWIRE_SQLITE__SYNCHRONOUS`` for the ``sqlite`` store).
Command-line options override the environment.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, get_origin, overload

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, create_model, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python
from pydantic_settings import BaseSettings, SettingsConfigDict

from newswire.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "SASL_MECHANISMS",
    "SECURITY_PROTOCOLS",
    "KafkaSettings",
    "MetricsSettings",
    "ProducerSettings",
    "RunnerSettings",
    "SerdeSettings",
    "Settings",
    "env_name",
    "load_section",
    "unknown_variables",
]


#: ``NEWSWIRE_KAFKA__SECURITY_PROTOCOL``'s values, as Apache Kafka names them.
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: The SASL mechanisms both Kafka clients support with a username and password.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(BaseModel):
    """How to reach the broker and how consumers behave in their group."""

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "newswire"
    partitions: int = Field(6, ge=1, description="Partitions per topic when newswire creates them.")
    replication_factor: int = Field(1, ge=1)
    # Apache Kafka's defaults; the embedded broker and the tests use 2000/500 (DESIGN §6).
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    max_poll_records: int = 1000
    client: str = Field(
        "confluent",
        description="Kafka client of consumers, producers and admin: confluent (librdkafka: "
        "a fetched record costs ~1.2 µs of CPU, kafka-python ~4.6, benchmarks/bench_fetch.py) "
        "or kafka-python.",
    )
    output_client: str | None = Field(
        "confluent",
        description="Client of the stages' output producer (empty: `client`): librdkafka's "
        "produce() costs ~5 µs a record, kafka-python's send() 25-65 µs.",
    )
    fetch_max_wait_ms: int = Field(
        10,
        ge=0,
        description="Longest wait of a fetch for data: Tansu holds a fetch that long even when "
        "data is there, so it is short (10 ms: 1.47x the throughput of the default 500).",
    )
    flush_timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for acknowledgements at a flush."
    )
    timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest wait for the broker in a command (connect, metadata, admin "
        "requests): an unreachable broker is reported after this long.",
    )
    security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    ssl_cafile: Path | None = Field(
        None,
        description="SSL: the CA certificate(s) (PEM) that signed the broker's; "
        "empty: the system's CAs.",
    )
    ssl_certfile: Path | None = Field(
        None, description="SSL: this client's certificate (PEM), for brokers that require one."
    )
    ssl_keyfile: Path | None = Field(None, description="SSL: the client certificate's key (PEM).")
    ssl_key_password: SecretStr | None = Field(
        None, description="SSL: the password of an encrypted client key."
    )
    ssl_check_hostname: bool = Field(
        True, description="SSL: check that the broker's certificate names the host connected to."
    )
    sasl_mechanism: str | None = Field(
        None, description="SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    def check_security(self) -> None:
        """Check that the security settings fit together and their files exist.

        Raises :class:`~newswire.errors.ConfigError` naming the variable and the
        value (never a secret). The adapters call it before configuring a client.
        """
        protocol = self.security_protocol.upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"NEWSWIRE_KAFKA__SECURITY_PROTOCOL={self.security_protocol!r} is not one of "
                f"{', '.join(SECURITY_PROTOCOLS)}",
                setting="security_protocol",
            )
        tls = protocol in ("SSL", "SASL_SSL")
        files = {
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        for name, path in files.items():
            if path is None:
                continue
            if not tls:
                raise ConfigError(
                    f"NEWSWIRE_KAFKA__{name.upper()}={path} is set but "
                    f"NEWSWIRE_KAFKA__SECURITY_PROTOCOL={self.security_protocol} uses no TLS "
                    "(SSL or SASL_SSL)",
                    setting=name,
                )
            if not path.is_file():
                raise ConfigError(
                    f"NEWSWIRE_KAFKA__{name.upper()}={path}: no such file", setting=name
                )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ConfigError(
                f"NEWSWIRE_KAFKA__SSL_KEYFILE={self.ssl_keyfile} needs "
                "NEWSWIRE_KAFKA__SSL_CERTFILE (the client certificate)",
                setting="ssl_keyfile",
            )
        if self.ssl_key_password is not None and self.ssl_keyfile is None:
            raise ConfigError(
                "NEWSWIRE_KAFKA__SSL_KEY_PASSWORD is set but NEWSWIRE_KAFKA__SSL_KEYFILE is not",
                setting="ssl_key_password",
            )
        sasl = protocol.startswith("SASL_")
        mechanism = (self.sasl_mechanism or "").upper()
        if sasl and mechanism not in SASL_MECHANISMS:
            raise ConfigError(
                f"NEWSWIRE_KAFKA__SASL_MECHANISM={self.sasl_mechanism!r} is not one of "
                f"{', '.join(SASL_MECHANISMS)} (needed by "
                f"NEWSWIRE_KAFKA__SECURITY_PROTOCOL={self.security_protocol})",
                setting="sasl_mechanism",
            )
        if not sasl and mechanism:
            raise ConfigError(
                f"NEWSWIRE_KAFKA__SASL_MECHANISM={self.sasl_mechanism} is set but "
                f"NEWSWIRE_KAFKA__SECURITY_PROTOCOL={self.security_protocol} uses no SASL "
                "(SASL_PLAINTEXT or SASL_SSL)",
                setting="sasl_mechanism",
            )
        if sasl and (not self.sasl_username or self.sasl_password is None):
            raise ConfigError(
                f"NEWSWIRE_KAFKA__SASL_MECHANISM={mechanism} needs NEWSWIRE_KAFKA__SASL_USERNAME "
                "and NEWSWIRE_KAFKA__SASL_PASSWORD",
                setting="sasl_username",
            )

    @property
    def tls(self) -> bool:
        """Whether the connection to the broker is TLS (SSL or SASL_SSL)."""
        return self.security_protocol.upper() in ("SSL", "SASL_SSL")

    def environment(self) -> dict[str, str]:
        """These settings as ``NEWSWIRE_KAFKA__*`` variables, for child processes (secrets
        included: they came from the environment)."""
        env = {}
        for name, value in self.model_dump().items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"NEWSWIRE_KAFKA__{name.upper()}"] = str(value)
        return env

    @field_validator("client", "output_client")
    @classmethod
    def _known_client(cls, value: str | None) -> str | None:
        from newswire.kafka import known_clients  # the registry; imported late: no cycle

        if value and value not in known_clients():
            raise ValueError(
                f"unknown Kafka client {value!r} (known: {', '.join(known_clients())})"
            )
        return value or None


class ProducerSettings(BaseModel):
    """Producer batching and durability, sources, worker processes and feed polling."""

    compression: str = Field("lz4", description="none, gzip, snappy, lz4 or zstd")
    linger_ms: int = 20
    # Big batches: a stage forwarding to the source partition fills one at a time.
    batch_size: int = 4 * 1024 * 1024
    max_request_size: int = 10 * 1024 * 1024
    max_document_bytes: int = Field(
        5 * 1024 * 1024, description="Documents (and JSON lines) larger than this are rejected."
    )
    rejects_path: Path = Path("newswire-rejects.jsonl")
    workers: int = Field(
        0, ge=0, description="Processes that parse, validate and encode; 0: one per core."
    )
    chunk_files: int = Field(128, ge=1, description="Documents per worker task.")
    chunk_bytes: int = Field(1024 * 1024, ge=1024, description="JSON-lines bytes per worker task.")
    ingested_at_header: bool = Field(
        True, description="Also put the ingest time in a `newswire.ingested_at` record header."
    )
    max_feed_bytes: int = Field(32 * 1024 * 1024, description="Larger feeds are rejected.")
    feed_every_s: float = Field(300.0, gt=0, description="--follow: seconds between polls.")
    feed_timeout_s: float = Field(20.0, gt=0, description="--follow: HTTP timeout per request.")
    feed_backoff_max_s: float = Field(
        3600.0, gt=0, description="--follow: longest wait before retrying a failing feed."
    )
    feed_state_path: Path = Field(
        Path("newswire-feeds.sqlite"),
        description="--follow: validators and emitted entries per feed, kept across restarts.",
    )
    feed_seen_max: int = Field(
        20_000, ge=100, description="--follow: emitted entry ids remembered per feed."
    )
    feed_concurrency: int = Field(8, ge=1, description="--follow: feeds fetched at once.")
    user_agent: str = "newswire/0.1 (feed poller)"


class RunnerSettings(BaseModel):
    """The consumer runtime."""

    poll_timeout_ms: int = 500
    max_retries: int = Field(5, ge=0, description="Attempts for a retriable failure before DLQ.")
    retry_backoff_ms: int = 200
    retry_backoff_max_ms: int = 10_000
    state_dir: Path | None = Field(
        None,
        description="Where stages keep state that lives only as long as the broker's data "
        "(set by `newswire run` for its memory-only embedded broker).",
    )


class MetricsSettings(BaseModel):
    """The Prometheus endpoint each process serves."""

    host: str = "0.0.0.0"
    port: int = Field(9400, ge=0, le=65535, description="0 picks a free port.")
    port_file: Path | None = Field(None, description="Write the bound port here (for `run`).")
    runtime_dir: Path | None = Field(
        None,
        description="Where consumer processes announce their /metrics for `newswire status` "
        "(default: $TMPDIR/newswire-$UID).",
    )
    enabled: bool = True


class _SectionEnv(BaseSettings):
    """Loads one plug-in section from ``NEWSWIRE_<NAME>__<FIELD>``, as :class:`Settings` does."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSWIRE_", env_nested_delimiter="__", extra="ignore"
    )


def _field_name(name: str) -> str:
    return re.sub(r"\W", "_", name).lower()


def env_name(section: str, field: str | None = None) -> str:
    """The variable of *section*'s *field* (``NEWSWIRE_STORE__URL``), or its prefix."""
    prefix = f"NEWSWIRE_{_field_name(section).upper()}__"
    return prefix + field.upper() if field else prefix


class SerdeSettings(BaseModel):
    """The wire format of every value newswire writes and reads (README: wire formats)."""

    mode: str = Field(
        "single-object",
        description="single-object (Avro single-object encoding, no server) or registry "
        "(Confluent Schema Registry wire format, subjects <topic>-value).",
    )
    registry_url: str | None = Field(
        None,
        description="registry mode: the schema registry, http(s)://host:8081 "
        "(comma-separated for several; mock://NAME is confluent-kafka's in-process one).",
    )
    registry_auth: SecretStr | None = Field(
        None, description="registry mode: HTTP basic auth as user:password."
    )
    registry_auto_register: bool = Field(
        True,
        description="registry mode: register a schema under <topic>-value on first use; "
        "false: only look it up (register with `newswire schemas register`).",
    )
    registry_timeout_s: float = Field(10.0, gt=0, description="registry mode: HTTP timeout.")
    registry_retries: int = Field(
        3, ge=0, description="registry mode: retries of a failed request (with backoff)."
    )


class Settings(BaseSettings):
    """All newswire settings: the kernel's sections, and the plug-ins' on demand.

    ``settings.section(name, Model)`` (or ``settings.<name>`` for a registered
    plug-in that declares a ``settings_model``) loads the section of a
    consumer, source or store from ``NEWSWIRE_<NAME>__<FIELD>`` once; later
    changes to the returned object (command-line options) stay with these
    settings and reach child processes through :meth:`environment`.
    """

    model_config = SettingsConfigDict(
        env_prefix="NEWSWIRE_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings())
    producer: ProducerSettings = Field(default_factory=lambda: ProducerSettings())
    runner: RunnerSettings = Field(default_factory=lambda: RunnerSettings())
    metrics: MetricsSettings = Field(default_factory=lambda: MetricsSettings())
    serde: SerdeSettings = Field(default_factory=lambda: SerdeSettings())
    log_level: str = "INFO"

    _sections: dict[str, BaseModel] = PrivateAttr(default_factory=dict)

    @overload
    def section(self, name: str) -> Any: ...

    @overload
    def section(self, name: str, model: type[M]) -> M: ...

    def section(self, name: str, model: type[M] | None = None) -> Any:
        """The settings section of the plug-in *name* (loaded from the environment once).

        Without *model*, the model is the ``settings_model`` of the consumer,
        source or store registered as *name*. Raises
        :class:`~newswire.errors.ConfigError` naming the variable of an
        invalid value.
        """
        key = _field_name(name)
        found = self._sections.get(key)
        if found is None:
            found = load_section(name, model or plugin_settings_model(name))
            self._sections[key] = found
        elif model is not None and not isinstance(found, model):
            raise ConfigError(
                f"settings section {name!r} is a {type(found).__name__}, not a {model.__name__}",
                name=name,
            )
        return found

    def sections(self) -> dict[str, BaseModel]:
        """The plug-in sections loaded so far, by name."""
        return dict(self._sections)

    def environment(self) -> dict[str, str]:
        """These settings as ``NEWSWIRE_*`` variables (for a child process), secrets included."""
        found: dict[str, str] = {"NEWSWIRE_LOG_LEVEL": self.log_level}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, BaseModel):  # every kernel section (kafka, serde, …)
                found.update(_variables(name, value))
        for name, section in self._sections.items():
            found.update(_variables(name, section))
        return found

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            # ``settings.store``: the section of the plug-in named so (built-in or not).
            try:
                return super().__getattr__(name)
            except AttributeError:
                if name.startswith("_"):
                    raise
                try:
                    return self.section(name)
                except ConfigError as exc:
                    raise AttributeError(f"no settings section {name!r}: {exc}") from None


def load_section(name: str, model: type[M]) -> M:
    """*model* loaded from ``NEWSWIRE_<NAME>__<FIELD>`` variables (and its defaults)."""
    key = _field_name(name)
    env = create_model(  # type: ignore[call-overload]
        f"{model.__name__}Env",
        __base__=_SectionEnv,
        **{key: (model, Field(default_factory=model))},
    )
    try:
        loaded = getattr(env(), key)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{env_name(name, '__'.join(str(p) for p in err['loc'][1:]))}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}", section=name) from exc
    if not isinstance(loaded, model):
        raise ConfigError(f"settings section {name!r} did not load as {model.__name__}")
    return loaded


def plugin_settings_model(name: str) -> type[BaseModel]:
    """The ``settings_model`` of the consumer, source or store registered as *name*."""
    from newswire import registry

    for group in registry.GROUPS:
        if any(found.name == name for found in registry.available(group)):
            model = getattr(registry.load(group, name), "settings_model", None)
            if isinstance(model, type) and issubclass(model, BaseModel):
                return model
            raise ConfigError(f"plug-in {name!r} declares no settings", name=name)
    raise ConfigError(f"no plug-in named {name!r} (so no settings section)", name=name)


def _variables(name: str, section: BaseModel) -> dict[str, str]:
    found: dict[str, str] = {}
    for field, value in section:
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, str | int | float | Path):
            text = str(value)
        else:
            text = json.dumps(to_jsonable_python(value))
        found[env_name(name, field)] = text
    return found


# -- unknown variables -------------------------------------------------------------------------

#: ``NEWSWIRE_*`` variables that are not settings but are read elsewhere: the benchmarks,
#: the tests, docker-compose's interpolation of the follow service's feed.
NOT_SETTINGS = frozenset(
    {"NEWSWIRE_BENCH_POSTGRES", "NEWSWIRE_TEST_POSTGRES", "NEWSWIRE_FOLLOW_URL"}
)


def _model_variables(prefix: str, model: type[BaseModel]) -> dict[str, bool]:
    """Variable → whether it may have ``__SUB`` parts (a nested model or mapping)."""
    found: dict[str, bool] = {}
    for field, info in model.model_fields.items():
        annotation = get_origin(info.annotation) or info.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel | dict)
        found[f"{prefix}{field.upper()}"] = nested
    return found


def kernel_variables() -> dict[str, bool]:
    """Every ``NEWSWIRE_*`` variable of the kernel's settings."""
    found: dict[str, bool] = {}
    for field, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            found.update(_model_variables(env_name(field), model))
        else:
            found[f"NEWSWIRE_{field.upper()}"] = False
    return found


def plugin_variables(names: list[str] | None = None) -> dict[str, bool]:
    """The variables of registered plug-ins' settings (of *names* only, if given)."""
    from newswire import registry

    found: dict[str, bool] = {}
    for group in registry.GROUPS:
        for entry in registry.available(group):
            if names is not None and _field_name(entry.name) not in names:
                continue
            try:
                model = getattr(registry.load(group, entry.name), "settings_model", None)
            except ConfigError:
                continue  # a broken plug-in is reported when it is used
            if isinstance(model, type) and issubclass(model, BaseModel):
                found.update(_model_variables(env_name(entry.name), model))
    return found


def _is_known(name: str, known: dict[str, bool]) -> bool:
    if name in known:
        return True
    head, sep, _ = name.rpartition("__")
    while sep:
        if known.get(head):
            return True
        head, sep, _ = head.rpartition("__")
    return False


def unknown_variables(environ: dict[str, str]) -> list[tuple[str, str | None]]:
    """``NEWSWIRE_*`` variables that no setting reads, each with the closest known one.

    Plug-ins are imported only when some variable is not the kernel's.
    """
    names = sorted(
        n for n in environ if n.upper().startswith("NEWSWIRE_") and n.upper() not in NOT_SETTINGS
    )
    known = kernel_variables()
    left = [n for n in names if not _is_known(n.upper(), known)]
    if not left:
        return []
    # First the plug-ins named by a variable's section, then (for typos in a section) all.
    sections = [n.upper().removeprefix("NEWSWIRE_").partition("__")[0].lower() for n in left]
    known.update(plugin_variables(sections))
    left = [n for n in left if not _is_known(n.upper(), known)]
    if not left:
        return []
    known.update(plugin_variables())
    # Compared without the common prefix, which would make everything look alike.
    bare = {k.removeprefix("NEWSWIRE_"): k for k in known}
    found = []
    for name in left:
        if _is_known(name.upper(), known):
            continue
        close = difflib.get_close_matches(name.upper().removeprefix("NEWSWIRE_"), bare, n=1)
        found.append((name, bare[close[0]] if close else None))
    return found
