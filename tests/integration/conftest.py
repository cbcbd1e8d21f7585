"""Every test here runs once per Kafka client (tests/conftest.py's ``kafka_client``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_each_kafka_client(kafka_client: str) -> str:
    return kafka_client
