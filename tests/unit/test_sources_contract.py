"""The parts every source shares: format detection through the registry, the fast YAML
constructor and the fast Avro record (both must equal what they replace), durations."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml

from newswire.cli.produce import _source_classes, build_sources, detect, parse_duration
from newswire.errors import ConfigError
from newswire.publisher import Encoder, avro_record, validate
from newswire.settings import Settings
from newswire.source import (
    SKIP_EMPTY,
    SKIP_HIDDEN,
    SKIP_PROJECT_FILE,
    SKIP_UNRECOGNISED,
    Document,
    Reject,
    scan,
)
from producers.documents import DocumentSource, FrontMatterError, load_front_matter
from producers.feeds import FeedSource
from producers.follow import FeedFollower
from producers.jsonl import JsonLinesSource
from tests.conftest import ARTICLES, FIXTURES

FEEDS = FIXTURES / "feeds"


# -- detection -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.txt", b"---\ntitle: x\n---\n", "documents"),
        ("a.md", b"", "documents"),
        ("a.jsonl", b"", "jsonl"),
        ("a.NDJSON", b"", "jsonl"),
        ("a.rss", b"", "feed"),
        ("a.atom", b"", "feed"),
        ("a.xml", b"", "feed"),
        ("noext", b"---\ntitle: x\n", "documents"),
        ("data.json", b'{"title": "x"}\n', "jsonl"),
        ("feed.php", b'\xef\xbb\xbf  <?xml version="1.0"?><rss/>', "feed"),
        ("feed.bin", b"\x1f\x8b\x08\x00compressed", "feed"),
        ("mystery", b"plain words", "documents"),
    ],
)
def test_a_path_is_detected_by_suffix_then_content(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert detect(str(path), _source_classes()) == expected


def test_stdin_urls_and_missing_files_are_detected(tmp_path: Path) -> None:
    classes = _source_classes()
    assert detect("-", classes) == "jsonl"
    assert detect("https://example.com/feed", classes) == "feed"
    assert detect(str(tmp_path / "missing.txt"), classes) == "documents"  # rejected when read
    with pytest.raises(ConfigError, match="ftp"):
        detect("ftp://example.com/feed", classes)


def test_one_call_mixes_documents_json_lines_and_feeds(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    shutil.copytree(ARTICLES, inbox / "articles")
    shutil.copy(FEEDS / "rss091.xml", inbox / "wire.rss")
    (inbox / "more.jsonl").write_text('{"title": "x", "originalUrl": "https://e.com/x"}\n')
    (inbox / "README.md").write_text("# not an article")
    sources = build_sources([str(inbox), str(FEEDS / "rss-parser2_heise.atom")], Settings())
    by_type = {type(s): s for s in sources}
    assert set(by_type) == {DocumentSource, JsonLinesSource, FeedSource}
    documents = by_type[DocumentSource]
    assert isinstance(documents, DocumentSource)
    assert len(documents.files()) == len(list(ARTICLES.glob("*.txt")))
    feeds = by_type[FeedSource]
    assert isinstance(feeds, FeedSource)
    assert sorted(Path(p).name for p in feeds.inputs()) == ["rss-parser2_heise.atom", "wire.rss"]


def test_format_forces_a_source_and_follow_adds_the_poller(tmp_path: Path) -> None:
    settings = Settings()
    settings.producer.feed_every_s = 42
    odd = tmp_path / "articles.log"
    odd.write_text('{"title": "x"}\n')
    sources = build_sources([str(odd)], settings, fmt="jsonl", follow=["http://127.0.0.1:1/f"])
    assert [type(s) for s in sources] == [JsonLinesSource, FeedFollower]
    follower = sources[1]
    assert isinstance(follower, FeedFollower)
    assert (follower.urls, follower.every_s) == (["http://127.0.0.1:1/f"], 42)
    with pytest.raises(ConfigError, match="no source named 'csv'"):
        build_sources([str(odd)], settings, fmt="csv")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("0.2s", 0.2)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", "-1", "0"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


# -- the fast YAML constructor -----------------------------------------------------------------

_UNUSUAL = [
    "base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n",  # merge keys
    "a: &a [1, 2]\nb: *a\n",  # aliases share the object
    "s: !!set {a, b}\no: !!omap [{a: 1}, {b: 2}]\n",
    "when: 2021-02-18T21:45:00Z\nday: 2021-02-18\nn: ~\nyes_: yes\nf: 1.5\nh: 0x1F\ne: ''\n",
    "- 1\n- two\n- {three: 3}\n",
    "plain scalar\n",
    "",
    "'quoted': \"x\"\n? complex\n: key\n",
    "bin: !!binary aGVsbG8=\n",
    "lt: <\nempty:\nnested: {a: [1, {b: null}], c: 'x'}\n",
    "explicit: !!str 123\nint: !!int '7'\n",
]


@pytest.mark.parametrize("text", _UNUSUAL)
def test_fast_front_matter_loading_equals_pyyaml(text: str) -> None:
    expected = yaml.load(text, Loader=yaml.CSafeLoader)
    loaded = load_front_matter(text)
    assert loaded == expected
    if text.startswith("a: &a"):
        assert loaded["a"] is loaded["b"]


def test_fast_front_matter_loading_equals_pyyaml_on_every_fixture() -> None:
    for path in sorted(ARTICLES.glob("*.txt")):
        front = path.read_text(encoding="utf-8").split("---\n")[1]
        assert load_front_matter(front) == yaml.load(front, Loader=yaml.CSafeLoader), path.name


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]: list as key\n",
        "? {a: 1}\n: mapping as key\n",
        "a: !!python/object:os.system x\n",
        "a: [unclosed\n",
        "a: 1\n---\nb: 2\n",
        "odd: =\n",
    ],
)
def test_fast_front_matter_loading_raises_like_pyyaml(text: str) -> None:
    with pytest.raises(yaml.YAMLError):
        yaml.load(text, Loader=yaml.CSafeLoader)
    with pytest.raises(yaml.YAMLError):
        load_front_matter(text)


# -- the fast Avro record ------------------------------------------------------------------------


def _documents() -> list[Document]:
    found = [
        item
        for item in DocumentSource([ARTICLES])
        if isinstance(item, Document) and not item.origin.endswith(("bad_missing_title.txt",))
    ]
    found += [i for i in FeedSource([FEEDS]) if isinstance(i, Document)]
    found.append(
        Document(
            "extras.jsonl",
            {
                "title": "t",
                "originalUrl": "https://e.com/x",
                "secured": "s3cr3t",
                "mystery": {"a": 1},
                "related": [{"title": "r", "provider": None}],
            },
            line=1,
        )
    )
    return found


def test_avro_record_equals_model_dump_for_every_fixture_and_feed_entry() -> None:
    checked = 0
    for document in _documents():
        article = validate(document)
        if isinstance(article, Reject):
            continue
        assert avro_record(article) == article.model_dump(), document.where
        checked += 1
    assert checked > 100


def test_the_encoder_stamps_ingest_time_and_source_and_counts_extras() -> None:
    encoder = Encoder()
    before = dt.datetime.now(dt.UTC)
    document = _documents()[-1]
    result = encoder.document(document)
    assert not isinstance(result, Reject)
    (key, value, header, where), extras = result
    name, record = encoder.serde.decode(value)
    assert name == "newswire.Article"
    assert key == record["id"].encode()
    assert record["source"] == "extras.jsonl"
    assert where == "extras.jsonl:1"
    assert extras == 1 and json.loads(record["extras"]["mystery"]) == {"a": 1}
    assert record["secured"] == "s3cr3t"
    ingested = dt.datetime.fromisoformat(header.decode())
    assert before <= ingested <= dt.datetime.now(dt.UTC)
    assert record["ingested_at"] == ingested


def test_front_matter_that_refers_to_itself_is_refused() -> None:
    with pytest.raises(FrontMatterError, match="refers to itself"):
        load_front_matter("r: &r [*r]\n")


# -- directories: sniffed, gzip, skipped files reported ------------------------------------------


def odd_names_inbox(root: Path) -> Path:
    """Issue 12 item 5: files whose names say nothing, gzip, and things to skip."""
    root.mkdir()
    shutil.copy(ARTICLES / "000_e6160929f81e6bcd.txt", root / "seed.dat")
    shutil.copy(FIXTURES / "feeds" / "rss091.xml", root / "feed.dat")
    (root / "heise.xml.gz").write_bytes(
        gzip.compress((FIXTURES / "feeds" / "rss-parser2_heise.atom").read_bytes())
    )
    (root / "lines.dat").write_text('{"title": "x", "originalUrl": "https://e.com/x"}\n')
    (root / "more.jsonl.gz").write_bytes(
        gzip.compress(b'{"title": "y", "originalUrl": "https://e.com/y"}\n')
    )
    (root / "blob.gz").write_bytes(
        gzip.compress(b"---\ntitle: z\noriginalUrl: https://e.com/z\n---\n")
    )
    (root / "README.md").write_text("# not an article")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "empty.dat").write_bytes(b"")
    (root / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    (root / "notes.csv").write_text("a,b\n1,2\n")
    return root


def test_a_directory_is_sniffed_like_named_files_and_skips_are_counted(tmp_path: Path) -> None:
    root = odd_names_inbox(tmp_path / "inbox")
    found = scan([root], _source_classes())
    names = {k: sorted(Path(p).name for p in v) for k, v in found.files.items()}
    assert names == {
        "documents": ["blob.gz", "seed.dat"],
        "feed": ["feed.dat", "heise.xml.gz"],
        "jsonl": ["lines.dat", "more.jsonl.gz"],
    }
    assert found.skipped == {
        SKIP_HIDDEN: 2,
        SKIP_PROJECT_FILE: 1,
        SKIP_EMPTY: 1,
        SKIP_UNRECOGNISED: 2,
    }
    assert sorted(Path(p).name for p, why in found.skipped_paths if why == SKIP_UNRECOGNISED) == [
        "notes.csv",
        "photo.jpg",
    ]
    # Named on the command line, each file goes to the same source as in the directory.
    classes = _source_classes()
    for source_name, files in found.files.items():
        assert {detect(f, classes) for f in files} == {source_name}


def test_gzip_documents_and_json_lines_are_read(tmp_path: Path) -> None:
    root = odd_names_inbox(tmp_path / "inbox")
    by_type = {type(s): s for s in build_sources([str(root)], Settings())}
    documents = list(by_type[DocumentSource])
    assert [d.fields["title"] for d in documents if isinstance(d, Document)] == [
        "z",
        "Minneapolis becomes latest city to ban use of facial recognition technology",
    ]
    lines = [d for d in by_type[JsonLinesSource] if isinstance(d, Document)]
    assert sorted(d.fields["title"] for d in lines) == ["x", "y"]
    entries = [d for d in by_type[FeedSource] if isinstance(d, Document)]
    assert len(entries) == 15 + 2


def test_the_skipped_report_counts_each_reason_and_names_files_at_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    root = odd_names_inbox(tmp_path / "inbox")
    with caplog.at_level(logging.DEBUG, logger="newswire.cli.produce"):
        build_sources([str(root)], Settings())
    err = capsys.readouterr().err
    assert "skipped 6 files in directories: " in err
    assert (
        f"2 {SKIP_HIDDEN}" in err and f"2 {SKIP_UNRECOGNISED}" in err and f"1 {SKIP_EMPTY}" in err
    )
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("photo.jpg" in m and SKIP_UNRECOGNISED in m for m in debug)
    assert any(".git" in m and SKIP_HIDDEN in m for m in debug)
