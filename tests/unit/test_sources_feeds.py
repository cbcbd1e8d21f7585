"""RSS/Atom files (feedparser): real feeds map onto the seed fields; anything that is not
a feed, or an entry that cannot be an article, is rejected with file, entry, field, reason."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest

from newswire.model import Article
from newswire.publisher import validate
from newswire.source import Document, Reject
from producers.feeds import FeedSource, entry_key, html_to_text, parse_feed
from tests.conftest import FIXTURES

FEEDS = FIXTURES / "feeds"


def articles(path: Path) -> list[Article | Reject]:
    found: list[Article | Reject] = []
    for item in FeedSource([path]):
        found.append(validate(item) if isinstance(item, Document) else item)  # type: ignore[arg-type]
    return found


def only_article(path: Path) -> Article:
    (article,) = articles(path)
    assert isinstance(article, Article), article
    return article


def feed_file(tmp_path: Path, body: str, name: str = "feed.xml") -> Path:
    path = tmp_path / name
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Test Wire</title><link>https://www.testwire.example/</link>"
        f"{body}</channel></rss>",
        encoding="utf-8",
    )
    return path


def item(**parts: str) -> str:
    fields = {"title": "A headline", "link": "https://testwire.example/a", **parts}
    return "<item>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v) + "</item>"


def test_rss2_entry_maps_onto_the_seed_fields() -> None:
    article = only_article(FEEDS / "feedparser1_category-feed.xml")
    assert article.title == "E.P.A. Plan to Clean Up Gowanus Canal Meets Local Resistance"
    assert article.original_url.startswith(
        "http://www.nytimes.com/2013/05/06/nyregion/epa-plan-to-clean-up-gowanus-canal"
    )
    assert article.published_at == dt.datetime(2013, 5, 5, 17, 15, 11, tzinfo=dt.UTC)
    assert (article.provider.name, article.provider.domain) == ("NYT > Home Page", "nytimes.com")
    assert article.topics == ["Water Pollution", "Gowanus Canal (Brooklyn, NY)"]
    assert article.excerpt == "Removed for overview ..."
    assert (article.category, article.type) == ("news", "article")


def test_media_content_thumbnails_and_image_enclosures_become_images_once() -> None:
    article = only_article(FEEDS / "feedparser1_mediacontent-dupes.xml")  # ISO-8859-1
    assert [image.url for image in article.images] == [
        "http://i.mol.im/i/pix/2013/02/03/article-2272640-174FCEE2000005DC-697_154x115.jpg"
    ]  # the same image thrice (content, thumbnail, enclosure); the mp4 enclosure is no image
    assert (article.images[0].width, article.images[0].height) == (154, 115)
    assert article.provider.domain == "dailymail.co.uk"
    assert "Black Dahlia" in article.title
    assert article.body  # content:encoded, as text
    assert "<" not in article.body


def test_a_windows_1251_feed_is_decoded() -> None:
    found = articles(FEEDS / "feedparser1_iconv.xml")
    assert len(found) == 10
    first = found[0]
    assert isinstance(first, Article)
    assert first.title.startswith("В Бузулуке главные стройплощадки")  # noqa: RUF001
    assert first.provider.name.startswith("Новости Оренбурга")
    assert first.published_at == dt.datetime(2014, 1, 22, 14, 31, 31, tzinfo=dt.UTC)  # +0600
    assert first.images[0].url.endswith("stroitelstvo_krany.jpg")


def test_atom_entries_with_published_dates() -> None:
    found = articles(FEEDS / "rss-parser2_heise.atom")
    assert len(found) == 15
    assert all(isinstance(a, Article) for a in found)
    first = found[0]
    assert isinstance(first, Article)
    assert first.title == "Java-Anwendungsserver: Red Hat gibt WildFly 10 frei"
    assert first.published_at == dt.datetime(2016, 2, 1, 16, 22, tzinfo=dt.UTC)
    assert (first.provider.name, first.provider.domain) == (
        "heise developer neueste Meldungen",
        "heise.de",
    )


def test_rss1_entries_take_their_date_from_dc_date() -> None:
    found = articles(FEEDS / "rss-parser2_rss-1.rss")
    assert len(found) == 69
    first = found[0]
    assert isinstance(first, Article)
    assert first.published_at == dt.datetime(2017, 6, 15, 17, 29, 47, tzinfo=dt.UTC)
    assert first.topics == ["Botany, Microbiology"]


def test_rss091_is_read_and_html_in_descriptions_becomes_text() -> None:
    found = articles(FEEDS / "rss091.xml")
    assert [a.title for a in found if isinstance(a, Article)] == [
        "Harbour bridge reopens after repairs",
        "City council approves new budget",
    ]
    first = found[0]
    assert isinstance(first, Article)
    assert first.excerpt == "The bridge reopened on Monday after six weeks of repairs."
    assert first.published_at is None  # RSS 0.91 items have no date: fine
    assert first.provider.domain == "example-wire.com"


def test_an_item_with_its_guid_twice_is_one_entry() -> None:
    article = only_article(FEEDS / "feedparser1_guid-dupes.xml")
    assert article.original_url == "http://www.braingle.com/50366.html"


def test_relative_links_in_a_file_are_rejected_naming_entry_and_field() -> None:
    found = articles(FEEDS / "feedparser1_intertwingly.atom")
    assert len(found) == 20
    reject = found[0]
    assert isinstance(reject, Reject)
    assert (reject.field, reject.entry) == ("originalUrl", 1)
    assert "absolute http(s) URL" in reject.reason
    assert str(reject).startswith(f"{FEEDS / 'feedparser1_intertwingly.atom'} entry 1: ")


@pytest.mark.parametrize(
    ("entry", "field", "reason"),
    [
        (item(title=""), "title", "required field is missing"),
        (item(link=""), "originalUrl", "required field is missing"),
        (item(link="javascript:alert(1)"), "originalUrl", "absolute http(s) URL"),
        (item(link="/relative/path"), "originalUrl", "absolute http(s) URL"),
        (item(pubDate="the day after tomorrow"), "publishedDateTime", "unparseable date"),
    ],
    ids=["no_title", "no_link", "javascript", "relative", "bad_date"],
)
def test_a_bad_entry_is_rejected_and_the_good_ones_kept(
    tmp_path: Path, entry: str, field: str, reason: str
) -> None:
    path = feed_file(tmp_path, item(link="https://testwire.example/ok") + entry)
    good, bad = articles(path)
    assert isinstance(good, Article)
    assert good.provider.domain == "testwire.example"
    assert isinstance(bad, Reject)
    assert (bad.origin, bad.entry, bad.field) == (str(path), 2, field)
    assert reason in bad.reason


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html><body><p>Not a feed</p></body></html>", "not_a_feed"),
        (b"title: a YAML document, not XML\n", "not_a_feed"),
        (b"\x00\x01\x02\xff\xfe garbage " * 50, "not_a_feed"),
    ],
    ids=["empty", "blank", "html", "yaml", "binary"],
)
def test_a_file_that_is_not_a_feed_is_one_reject(tmp_path: Path, data: bytes, kind: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_bytes(data)
    (reject,) = list(FeedSource([path]))
    assert isinstance(reject, Reject)
    assert (reject.origin, reject.kind, reject.entry) == (str(path), kind, None)
    if kind == "not_a_feed":
        assert reject.reason.startswith("not an RSS/Atom feed")


def test_a_truncated_feed_keeps_its_complete_entries(tmp_path: Path) -> None:
    path = feed_file(tmp_path, item(link="https://testwire.example/ok"))
    path.write_bytes(path.read_bytes().removesuffix(b"</channel></rss>") + b"<item><title>cut")
    found = articles(path)
    assert isinstance(found[0], Article)
    assert all(isinstance(r, Reject) for r in found[1:])


def test_gzip_compressed_feeds_are_read(tmp_path: Path) -> None:
    path = tmp_path / "heise.atom"
    path.write_bytes(gzip.compress((FEEDS / "rss-parser2_heise.atom").read_bytes()))
    assert len([a for a in articles(path) if isinstance(a, Article)]) == 15


def test_an_oversized_feed_is_rejected_with_the_limit(tmp_path: Path) -> None:
    (reject,) = list(FeedSource([FEEDS / "rss-parser2_heise.atom"], max_bytes=1000))
    assert isinstance(reject, Reject)
    assert reject.kind == "too_large"
    assert "over the limit of 1000 bytes" in reject.reason
    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(gzip.compress(b"<rss>" + b" " * 50_000 + b"</rss>"))
    (reject,) = list(FeedSource([bomb], max_bytes=10_000))
    assert isinstance(reject, Reject)
    assert reject.kind == "too_large"


def test_each_file_is_its_own_part(tmp_path: Path) -> None:
    source = FeedSource([FEEDS])
    names = sorted(Path(p.paths[0]).name for p in source.split())
    assert names == sorted(p.name for p in FEEDS.iterdir() if p.suffix in (".xml", ".atom", ".rss"))


def test_entry_keys_prefer_the_guid_then_the_link() -> None:
    assert entry_key({"id": "tag:x,2020:1", "link": "https://e.com/a"}) == "tag:x,2020:1"
    assert entry_key({"link": "https://e.com/a"}) == "https://e.com/a"
    hashed = entry_key({"title": "t", "published": "p"})
    assert hashed.startswith("sha:")
    assert hashed == entry_key({"title": "t", "published": "p"})


def test_html_becomes_visible_text() -> None:
    assert html_to_text("<p>One &amp; <b>two</b></p><script>x()</script><p>three</p>") == (
        "One & two three"
    )
    assert html_to_text("  plain   text ") == "plain text"
    assert html_to_text(None) == ""


def test_parse_feed_resolves_relative_links_against_the_fetched_address() -> None:
    data = (FEEDS / "feedparser1_intertwingly.atom").read_bytes()
    feed = parse_feed(
        "http://intertwingly.net/blog/index.atom",
        data,
        max_bytes=10**7,
        headers={"content-location": "http://intertwingly.net/blog/index.atom"},
    )
    assert not isinstance(feed, Reject)
    assert feed.entries[0]["link"] == "http://intertwingly.net/blog/2012/07/16/Inhibiting-Suspend"
