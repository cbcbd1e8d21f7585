"""The shipped Prometheus rules and Grafana dashboard, checked by the real promtool.

``promtool check`` validates the files; ``promtool test rules`` runs the unit tests
in deploy/prometheus/tests/ (each alert fires on a series that should fire it and
stays quiet on one that should not). The dashboard's queries are run against a
real Prometheus scraping a real pipeline in tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.prometheus import (
    PROMETHEUS_DIR,
    RULE_TESTS,
    RULES,
    alerting_rules,
    binary,
    dashboard,
    panel_queries,
    panels,
    recording_rules,
    variables,
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules() -> None:
    assert len(RULES) >= 2
    result = promtool("check", "rules", *map(str, RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", ["prometheus.yml", "local.yml"])
def test_promtool_checks_the_configs(config: str) -> None:
    result = promtool("check", "config", str(PROMETHEUS_DIR / config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests_pass() -> None:
    assert RULE_TESTS
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_waits_says_what_to_do_and_is_tested_both_ways() -> None:
    cases = [
        case
        for path in RULE_TESTS
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    alerts = alerting_rules()
    assert {a["alert"] for a in alerts} >= {
        "NewswireStageDown",
        "NewswireStageMissing",
        "NewswireConsumerLagGrowing",
        "NewswireDeadLetters",
        "NewswireDependencyUnavailable",
        "NewswireEndToEndLatencyHigh",
        "NewswireRejectSpike",
        "NewswireFeedFailing",
    }
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"\d+[smh]", str(alert.get("for", ""))), f"{name}: no for: duration"
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["annotations"]["summary"], name
        assert len(alert["annotations"]["description"]) > 80, f"{name}: say what to do"
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no test where it fires"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no test where it stays quiet"


def test_dashboard_variables_and_queries_fit_together() -> None:
    board = dashboard()
    names = variables(board)
    assert {"consumer", "topic"} <= set(names), "a variable per stage/group and per topic"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    shown = list(panels(board))
    assert len(shown) >= 20
    for panel in shown:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    recorded = {rule["record"] for rule in recording_rules()}
    for title, ref, expr in panel_queries(board):
        for var in re.findall(r"\$\{?(\w+)\}?", expr):
            assert var.startswith("__") or var in names, f"{title} {ref}: ${var} is not defined"
        for used in re.findall(r"newswire:[\w:]+", expr):
            assert used in recorded, f"{title} {ref}: {used} is not a recording rule"


def test_dashboard_shows_every_series_the_issue_asks_for() -> None:
    exprs = " ".join(expr for _title, _ref, expr in panel_queries(dashboard()))
    # A recorded series counts for the raw one it is computed from.
    for rule in recording_rules():
        if rule["record"] in exprs:
            exprs += " " + rule["expr"]
    wanted = [
        "newswire_consumer_records_in_total",
        "newswire_consumer_records_out_total",
        "newswire_consumer_batch_size",
        "newswire_consumer_processing_seconds",
        "newswire_consumer_lag",
        "newswire_consumer_end_to_end_seconds",
        "newswire_consumer_dlq_total",
        "newswire_consumer_retries_total",
        "newswire_consumer_unavailable",
        "newswire_store_outage_seconds_total",
        "newswire_store_outages_total",
        "newswire_dedup_duplicates_total",
        "newswire_dedup_state_entries",
        "newswire_dedup_evictions_total",
        "newswire_dedup_candidate_checks_total",
        "newswire_store_rows_written_total",
        "newswire_store_write_seconds",
        "newswire_producer_documents_read_total",
        "newswire_producer_records_out_total",
        "newswire_producer_rejected_total",
        "newswire_producer_feed_polls_total",
        "newswire_producer_feed_errors_total",
        "newswire_producer_feed_consecutive_failures",
    ]
    missing = [name for name in wanted if name not in exprs]
    assert not missing, f"no panel shows {missing}"
