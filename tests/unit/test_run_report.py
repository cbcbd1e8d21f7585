"""The run summary: stage outcomes from their counters, and the sum that must add up."""

from __future__ import annotations

from newswire import Outcome
from newswire.pipeline import ReportLine, RunReport, _outcome_counts

SAMPLES = {
    ("newswire_dedup_duplicates_total", (("consumer", "dedup"), ("reason", "url"))): 7.0,
    ("newswire_dedup_duplicates_total", (("consumer", "dedup"), ("reason", "near"))): 2.0,
    ("newswire_dedup_duplicates_total", (("consumer", "dedup"), ("reason", "update"))): 3.0,
    ("newswire_store_rows_written_total", (("consumer", "store"), ("table", "articles"))): 41.0,
    ("newswire_store_rows_written_total", (("consumer", "store"), ("table", "duplicates"))): 9.0,
}


def test_an_outcome_is_one_counter_filtered_or_split_by_a_label() -> None:
    split = Outcome(
        "sightings", "newswire_dedup_duplicates_total", split="reason", exclude=("update",)
    )
    assert _outcome_counts(split, SAMPLES) == [("sightings (near)", 2), ("sightings (url)", 7)]
    one = Outcome("stored", "newswire_store_rows_written_total", labels=(("table", "articles"),))
    assert _outcome_counts(one, SAMPLES) == [("stored", 41)]
    absent = Outcome("none", "newswire_nothing_total")
    assert _outcome_counts(absent, SAMPLES) == [("none", 0)]


def test_the_report_adds_up_only_when_every_document_is_accounted_once() -> None:
    lines = [
        ReportLine("dedup", "sightings (url)", 7, True, outcome="sightings"),
        ReportLine("dedup", "updates", 3, False, outcome="updates"),
        ReportLine("store", "stored", 41, True, outcome="stored"),
    ]
    report = RunReport(
        read=52, rejected=2, failed=0, sent=50, lines=lines, dead_letters={"store": 2}
    )
    assert report.dead_lettered == 2
    assert report.accounted == 2 + 7 + 41 + 2  # the non-terminal updates are not added
    assert report.adds_up
    short = RunReport(
        read=53, rejected=2, failed=0, sent=51, lines=lines, dead_letters={"store": 2}
    )
    assert not short.adds_up
