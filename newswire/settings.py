"""Settings, from environment variables ``NEWSWIRE_<SECTION>__<FIELD>`` (pydantic-settings).

Example: ``NEWSWIRE_KAFKA__BOOTSTRAP=kafka:9092``, ``NEWSWIRE_STORE__URL=postgresql://…``.
Command-line options override the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DedupSettings",
    "KafkaSettings",
    "MetricsSettings",
    "ProducerSettings",
    "RunnerSettings",
    "SerdeSettings",
    "Settings",
    "StoreSettings",
]


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
    output_client: Literal["confluent", "kafka-python"] = Field(
        "confluent",
        description="Client of the stages' output producer: librdkafka's produce() costs "
        "~5 µs a record, kafka-python's send() 25-65 µs.",
    )
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None


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


class StoreSettings(BaseModel):
    """Where the ``store`` consumer writes (and ``newswire articles`` reads)."""

    url: str = Field(
        "sqlite:///newswire.db",
        description="sqlite:///PATH (sqlite:////abs/path) or postgresql://user:pw@host:port/db",
    )
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = Field(
        "FULL",
        description="SQLite PRAGMA synchronous: FULL keeps committed batches across a power cut "
        "(one fsync per batch); NORMAL only across a crash of the process.",
    )
    sqlite_busy_timeout_s: float = Field(
        30.0, ge=0, description="SQLite: wait this long for another writer's lock, then retry."
    )
    connect_timeout_s: float = Field(5.0, gt=0, description="PostgreSQL connect timeout.")
    statement_timeout_ms: int = Field(
        120_000, ge=0, description="PostgreSQL statement_timeout of the store's session (0: none)."
    )
    application_name: str = Field("newswire", description="PostgreSQL application_name.")

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DedupSettings(BaseModel):
    """The ``dedup`` consumer: what counts as a duplicate, and what it remembers."""

    state_url: str = Field(
        "sqlite:///newswire-dedup.sqlite",
        description="sqlite:///PATH (one host) or postgresql://… (shared by a consumer group).",
    )
    max_entries: int = Field(
        1_000_000, ge=1, description="Remembered articles before the oldest are evicted."
    )
    window_s: int = Field(
        0,
        ge=0,
        description="Also forget articles whose event time is this far (seconds) behind the "
        "newest one remembered; 0: no window.",
    )
    min_content_chars: int = Field(
        80, description="Shorter texts get no content fingerprint (too formulaic to compare)."
    )
    near: bool = Field(True, description="Detect near-duplicates (syndicated copies).")
    near_threshold: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Estimated Jaccard similarity of word 5-shingles from which a candidate "
        "is a near-duplicate.",
    )
    near_min_words: int = Field(
        50, ge=5, description="Texts with fewer words are compared exactly only (briefs, scores)."
    )


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
    """All newswire settings."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSWIRE_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings())
    producer: ProducerSettings = Field(default_factory=lambda: ProducerSettings())
    runner: RunnerSettings = Field(default_factory=lambda: RunnerSettings())
    metrics: MetricsSettings = Field(default_factory=lambda: MetricsSettings())
    store: StoreSettings = Field(default_factory=lambda: StoreSettings())
    dedup: DedupSettings = Field(default_factory=lambda: DedupSettings())
    serde: SerdeSettings = Field(default_factory=lambda: SerdeSettings())
    log_level: str = "INFO"
