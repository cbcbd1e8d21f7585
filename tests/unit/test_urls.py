"""Canonical URLs and article ids (DESIGN §2: one article, one id, whatever the URL variant)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from newswire.errors import InvalidURLError, NewswireError, ValidationError
from newswire.urls import article_id, canonical_url, is_absolute_http_url
from tests.unit.support import ARTICLES, article, fields, variant_files

ROOT = Path(__file__).resolve().parents[2]
CANONICAL = "https://bbc.co.uk/news/x"

# Every kind of variant DESIGN §2 lists, all of the same page.
VARIANTS = {
    "plain": "https://bbc.co.uk/news/x",
    "www": "https://www.bbc.co.uk/news/x",
    "http": "http://bbc.co.uk/news/x",
    "http_www": "http://www.bbc.co.uk/news/x",
    "host_case": "https://WWW.BBC.Co.UK/news/x",
    "scheme_case": "HTTPS://www.bbc.co.uk/news/x",
    "trailing_slash": "https://www.bbc.co.uk/news/x/",
    "fragment": "https://www.bbc.co.uk/news/x#comments",
    "slash_fragment": "http://www.bbc.co.uk/news/x/#comments",
    "empty_fragment": "https://www.bbc.co.uk/news/x#",
    "port_443": "https://www.bbc.co.uk:443/news/x",
    "port_80": "http://www.bbc.co.uk:80/news/x",
    "utm": "https://www.bbc.co.uk/news/x?utm_source=twitter&utm_medium=social&utm_campaign=c",
    "utm_upper": "https://www.bbc.co.uk/news/x?UTM_Source=twitter",
    "fbclid": "https://www.bbc.co.uk/news/x?fbclid=IwAR0abc",
    "gclid": "https://www.bbc.co.uk/news/x?gclid=Cj0KCQ",
    "all_tracking": "http://www.bbc.co.uk:80/news/x/?utm_source=a&fbclid=b&gclid=c#top",
    "amp_cache_https": "https://www-bbc-co-uk.cdn.ampproject.org/c/s/www.bbc.co.uk/news/x",
    "amp_cache_http": "http://www-bbc-co-uk.cdn.ampproject.org/c/www.bbc.co.uk/news/x",
    "amp_cache_viewer": "https://www-bbc-co-uk.cdn.ampproject.org/v/s/www.bbc.co.uk/news/x",
    "amp_cache_upper_host": "https://WWW-BBC-CO-UK.CDN.AMPPROJECT.ORG/c/s/www.bbc.co.uk/news/x",
    "amp_cache_params": (
        "https://www-bbc-co-uk.cdn.ampproject.org/c/s/www.bbc.co.uk/news/x"
        "?amp_js_v=0.1&usqp=mq331AQ"
    ),
    "amp_query": "https://www.bbc.co.uk/news/x?amp",
    "amp_query_value": "https://www.bbc.co.uk/news/x?amp=1",
    "amp_path_last": "https://www.bbc.co.uk/news/x/amp/",
    "amp_path_last_no_slash": "https://www.bbc.co.uk/news/x/amp",
    "amp_path_first": "https://www.bbc.co.uk/amp/news/x",
    "surrounding_space": "  https://www.bbc.co.uk/news/x  ",
}


@pytest.mark.parametrize("url", VARIANTS.values(), ids=VARIANTS.keys())
def test_every_variant_kind_collapses_to_the_canonical_form(url: str) -> None:
    assert canonical_url(url) == CANONICAL


def test_all_variants_share_one_article_id() -> None:
    ids = {article_id(canonical_url(url)) for url in VARIANTS.values()}
    assert len(ids) == 1


@pytest.mark.parametrize("url", [*VARIANTS.values(), "https://e.com/p?b=2&a=1&utm_source=x"])
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


def test_canonical_form_is_https_without_www_fragment_or_default_port() -> None:
    parts = urlsplit(canonical_url("http://WWW.Example.COM:80/a/b/?utm_source=x#frag"))
    assert parts.scheme == "https"
    assert parts.netloc == "example.com"
    assert parts.path == "/a/b"
    assert parts.query == ""
    assert parts.fragment == ""


def test_meaningful_query_parameters_are_kept() -> None:
    url = "http://abcnews.go.com/International/story?id=45787395&utm_source=rss&fbclid=x"
    assert canonical_url(url) == "https://abcnews.go.com/International/story?id=45787395"


def test_query_parameters_are_sorted() -> None:
    assert canonical_url("https://e.com/p?b=2&a=1&c=3") == "https://e.com/p?a=1&b=2&c=3"
    assert canonical_url("https://e.com/p?b=2&a=1") == canonical_url("https://e.com/p?a=1&b=2")


def test_different_meaningful_query_values_are_different_articles() -> None:
    assert canonical_url("https://e.com/story?id=1") != canonical_url("https://e.com/story?id=2")


def test_a_blank_meaningful_parameter_is_kept() -> None:
    assert canonical_url("https://e.com/p?id=&x=1") == "https://e.com/p?id=&x=1"


def test_tracking_parameter_names_are_matched_whole_not_as_substrings() -> None:
    # "reference" and "sources" only look like tracking names.
    kept = canonical_url("https://e.com/p?reference=7&sources=a")
    assert "reference=7" in kept
    assert "sources=a" in kept


def test_non_default_ports_are_kept() -> None:
    assert canonical_url("https://www.e.com:8443/p") == "https://e.com:8443/p"
    assert canonical_url("http://e.com:8080/p") == "https://e.com:8080/p"
    assert canonical_url("https://e.com:8443/p") != canonical_url("https://e.com/p")


def test_path_case_is_significant() -> None:
    assert canonical_url("https://e.com/News/X") == "https://e.com/News/X"
    assert canonical_url("https://e.com/News/X") != canonical_url("https://e.com/news/x")


def test_percent_encoding_is_normalised() -> None:
    assert canonical_url("https://e.com/café") == canonical_url("https://e.com/caf%C3%A9")
    assert canonical_url("https://e.com/%7Euser") == canonical_url("https://e.com/~user")


def test_amp_only_as_a_whole_first_or_last_segment_is_dropped() -> None:
    assert canonical_url("https://e.com/news/amplifier") == "https://e.com/news/amplifier"
    assert canonical_url("https://e.com/champ/x") == "https://e.com/champ/x"
    assert canonical_url("https://e.com/p?page=amp") == "https://e.com/p?page=amp"


def test_amp_html_suffix_maps_to_the_html_page() -> None:
    assert canonical_url("https://e.com/story.amp.html") == canonical_url(
        "https://e.com/story.html"
    )


def test_amp_cache_url_keeps_the_publishers_meaningful_query() -> None:
    cache = "https://e-com.cdn.ampproject.org/c/s/e.com/story?id=9&amp_js_v=0.1"
    assert canonical_url(cache) == "https://e.com/story?id=9"


def test_the_seed_related_amp_urls_map_to_the_related_web_url() -> None:
    related = fields(ARTICLES / "000_e6160929f81e6bcd.txt")["related"][0]
    web = canonical_url(related["webUrl"])
    assert canonical_url(related["ampWebUrl"]) == web
    assert canonical_url(related["cdnAmpWebUrl"]) == web


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "/news/x",
        "news/x",
        "e.com/news/x",
        "//e.com/news/x",
        "javascript:alert(1)",
        "mailto:desk@e.com",
        "ftp://e.com/news/x",
        "file:///etc/passwd",
        "data:text/html,hi",
        "http://",
        "https:///news/x",
        "http://[::1",
    ],
)
def test_non_absolute_http_urls_are_rejected(url: str) -> None:
    assert not is_absolute_http_url(url)
    with pytest.raises(InvalidURLError) as caught:
        canonical_url(url)
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, NewswireError)
    assert caught.value.url == url.strip()
    assert "absolute http(s) URL" in str(caught.value)


@pytest.mark.parametrize("url", ["https://e.com:99999/x", "https://e.com:abc/x"])
def test_an_invalid_port_is_an_invalid_url_error_not_a_bare_value_error(url: str) -> None:
    # Callers (the model, the producer) catch InvalidURLError; a bare ValueError escapes them.
    assert not is_absolute_http_url(url)
    with pytest.raises(InvalidURLError):
        canonical_url(url)


def test_an_ipv6_host_keeps_its_brackets() -> None:
    canonical = canonical_url("http://[2001:db8::1]:8080/news/x")
    parts = urlsplit(canonical)
    assert parts.hostname == "2001:db8::1"
    assert parts.port == 8080
    assert canonical_url(canonical) == canonical


def test_absolute_http_urls_are_recognised() -> None:
    assert is_absolute_http_url("http://e.com")
    assert is_absolute_http_url("HTTPS://E.COM/x?y=1")
    assert is_absolute_http_url("  https://e.com/x  ")


def test_article_id_is_16_hex_digits() -> None:
    for url in VARIANTS.values():
        assert re.fullmatch(r"[0-9a-f]{16}", article_id(canonical_url(url)))


def test_article_id_differs_for_different_canonical_urls() -> None:
    urls = [f"https://e.com/story-{i}" for i in range(2000)]
    urls += ["https://e.com/story-1?id=2", "https://e.com:8443/story-1", "https://f.com/story-1"]
    assert len({article_id(canonical_url(u)) for u in urls}) == len(urls)


def test_article_id_is_stable_across_processes() -> None:
    # Python's hash() is salted per process; the id must not be.
    url = canonical_url(VARIANTS["all_tracking"])
    code = (
        "import sys; from newswire.urls import article_id; "
        "sys.stdout.write(article_id(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [sys.executable, "-c", code, url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out == article_id(url)


@pytest.mark.parametrize(
    ("variant", "original"), variant_files(), ids=[v.name for v, _ in variant_files()]
)
def test_fixture_variants_have_the_id_of_their_original(variant: Path, original: Path) -> None:
    v_url, o_url = fields(variant)["originalUrl"], fields(original)["originalUrl"]
    assert v_url != o_url  # the fixture really is a different URL
    assert article_id(canonical_url(v_url)) == article_id(canonical_url(o_url))
    assert article(variant).id == article(original).id
    assert article(variant).canonical_url == article(original).canonical_url


def test_there_are_variant_fixtures_to_check() -> None:
    kinds = {v.name.split("_variant_")[1] for v, _ in variant_files()}
    assert {"amp.txt", "utm.txt", "www_http.txt", "slash_fragment.txt"} <= kinds


def test_distinct_corpus_articles_have_distinct_ids() -> None:
    originals = [
        p
        for p in sorted(ARTICLES.glob("*.txt"))
        if "_variant_" not in p.name and not p.name.startswith("bad_")
    ]
    ids = [article(p).id for p in originals]
    assert len(originals) >= 7
    assert len(set(ids)) == len(ids)


# -- the fast paths equal the general code ---------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from newswire.urls import _canonical, _is_absolute_http_url  # noqa: E402

_URL_CHARS = "abcXYZ019-._~!$&'()*+,;=:@/%?#[] \t\u00e9\u00df"
_urls = st.builds(
    lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "javascript"]),
    st.from_regex(r"[A-Za-z0-9-]{0,6}(\.[A-Za-z0-9-]{1,6}){0,3}", fullmatch=True)
    | st.sampled_from(["www.e.com", "[::1]", "e.com.", "x-y.cdn.ampproject.org", ""]),
    st.sampled_from(["", "", ":80", ":443", ":8080", ":99999", ":x"]),
    st.text(alphabet=_URL_CHARS, max_size=30),
)
_PROPERTY = settings(max_examples=1000, deadline=None, derandomize=True, database=None)


@_PROPERTY
@given(_urls)
def test_the_fast_url_check_equals_the_general_one(url: str) -> None:
    assert is_absolute_http_url(url) == _is_absolute_http_url(url)


@_PROPERTY
@given(_urls)
def test_the_fast_canonical_url_equals_the_general_one(url: str) -> None:
    if not _is_absolute_http_url(url):
        return
    try:
        general = _canonical(url.strip(), fast=False)
    except InvalidURLError:
        with pytest.raises(InvalidURLError):
            _canonical(url.strip(), fast=True)
        return
    assert _canonical(url.strip(), fast=True) == general


def test_the_fast_paths_are_taken_for_plain_urls() -> None:
    from newswire import urls

    plain = "https://www.example.com/world/2024/01/02/a-story_(update)"
    assert urls._PLAIN_HOST.fullmatch(plain) and urls._W3LIB_STABLE.fullmatch(plain)
    assert canonical_url(plain) == "https://example.com/world/2024/01/02/a-story_(update)"
    for odd in (
        "https://e.com/caf%C3%A9",
        "https://e.com/a?b=1",
        "https://E.com/",
        "https://e.com:8080/",
    ):
        assert not urls._W3LIB_STABLE.fullmatch(odd)
