"""Settings, from environment variables ``NEWSWIRE_<SECTION>__<FIELD>`` (pydantic-settings).

Example: ``NEWSWIRE_KAFKA__BOOTSTRAP=kafka:9092``, ``NEWSWIRE_STORE__URL=postgresql://…``.
Command-line options override the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DedupSettings",
    "KafkaSettings",
    "MetricsSettings",
    "ProducerSettings",
    "RunnerSettings",
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
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None


class ProducerSettings(BaseModel):
    """Producer batching and durability."""

    compression: str = Field("lz4", description="none, gzip, snappy, lz4 or zstd")
    linger_ms: int = 20
    batch_size: int = 512 * 1024
    max_request_size: int = 10 * 1024 * 1024
    max_document_bytes: int = Field(
        5 * 1024 * 1024, description="Documents larger than this are rejected."
    )
    rejects_path: Path = Path("newswire-rejects.jsonl")


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
    """Where the ``store`` consumer writes."""

    url: str = "sqlite:///newswire.db"


class DedupSettings(BaseModel):
    """The ``dedup`` consumer's remembered state."""

    state_url: str = "sqlite:///newswire-dedup.sqlite"
    max_entries: int = Field(1_000_000, ge=1, description="Remembered keys before eviction.")
    min_content_chars: int = Field(
        80, description="Shorter texts get no content fingerprint (too formulaic to compare)."
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
    log_level: str = "INFO"
