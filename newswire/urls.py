"""Canonical article URLs and the article id derived from them.

Two URLs that a reader would call "the same article" map to one canonical URL:
tracking parameters, fragments, default ports, ``www.``, trailing slashes, the
host's case and the scheme (http/https) are dropped or normalised, and AMP
variants (Google's AMP cache, ``?amp``, ``/amp/``) are mapped back to the
publisher's page. w3lib does the parts it does well (percent-encoding, query
sorting); the news-specific rules live here.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import xxhash
from w3lib.url import canonicalize_url as _w3lib_canonicalize

from newswire.errors import InvalidURLError

__all__ = ["article_id", "canonical_url", "is_absolute_http_url"]

# Exact names; any parameter starting with one of _TRACKING_PREFIXES goes too.
_TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ocid",
        "cmpid",
        "smid",
        "smtyp",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "src",
        "share",
        "sharing",
        "mbid",
        "ito",
        "itm_source",
        "itm_medium",
        "itm_campaign",
        "rss",
        "cid",
        "ncid",
        "sr_share",
        "amp",
        "outputtype",
        "amp_js_v",
        "usqp",
        "__twitter_impression",
        "maca",
    }
)
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "oly_", "vero_", "__hs", "_hs")

_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"
# Google AMP cache paths: /c/ (content), /v/ (viewer), /i/ (image); an "s/" after
# them means the origin is https.
_AMP_CACHE_KINDS = ("c", "v", "i")


# Fast paths (the producer checks and canonicalises every URL; the profile showed
# these two functions at ~35% of a JSON line's cost). Each regex accepts only URLs
# for which the general code is known to give the same answer; anything else takes
# the general code. tests/unit/test_urls.py holds the two paths equal.
#
# An http(s) URL with a plain host name, no port, then anything: urlsplit finds the
# scheme and the host, and there is no port to be out of range.
_PLAIN_HOST = re.compile(r"https?://[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?:[/?#]\S*)?", re.ASCII)
# A URL w3lib's canonicalisation leaves as it is: a lower-case host, no port, a path of
# unreserved and sub-delimiter characters (no percent-escapes), no query, no fragment.
_W3LIB_STABLE = re.compile(
    r"https?://[a-z0-9-]+(?:\.[a-z0-9-]+)*(?:/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?", re.ASCII
)


def is_absolute_http_url(url: str) -> bool:
    """True for an absolute ``http``/``https`` URL with a host."""
    if _PLAIN_HOST.fullmatch(url):
        return True
    return _is_absolute_http_url(url)


def _is_absolute_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url.strip())
        _ = parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _from_amp_cache(url: str) -> str:
    """Map ``https://x-com.cdn.ampproject.org/c/s/x.com/path`` back to ``https://x.com/path``."""
    if _AMP_CACHE_SUFFIX not in url.lower():  # nearly every URL: no need to split it
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host.endswith(_AMP_CACHE_SUFFIX):
        return url
    kind, _, inner = parts.path.lstrip("/").partition("/")
    if kind not in _AMP_CACHE_KINDS:
        return url
    scheme = "http"
    if inner.startswith("s/"):
        scheme, inner = "https", inner[2:]
    if not inner:
        return url
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{inner}{query}"


def _keep_param(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _TRACKING_PARAMS and not lowered.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str, *, checked: bool = False) -> str:
    """Return the canonical form of an article URL.

    Raises :class:`~newswire.errors.InvalidURLError` when *url* is not an
    absolute http(s) URL (*checked*: the caller has made sure it is).
    """
    raw = url.strip()
    if not checked and not is_absolute_http_url(raw):
        raise InvalidURLError(f"not an absolute http(s) URL: {raw[:200]!r}", url=raw)
    return _canonical(raw, fast=True)


def _canonical(raw: str, *, fast: bool) -> str:
    raw = _from_amp_cache(raw)
    # w3lib: percent-encoding normalised, query arguments sorted, fragment dropped;
    # a URL it would not change skips it (*fast*).
    stable = fast and _W3LIB_STABLE.fullmatch(raw) is not None
    try:
        parts = urlsplit(raw if stable else _w3lib_canonicalize(raw, keep_fragments=False))
    except ValueError as exc:  # urlsplit let it pass, w3lib does not ("Invalid IPv6 URL")
        raise InvalidURLError(f"not a valid URL: {raw[:200]!r}: {exc}", url=raw) from exc
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port in (None, 80, 443) else f"{host}:{port}"

    segments = [s for s in parts.path.split("/") if s]
    # AMP variants of a page: /amp/ as the first or last path segment.
    if segments and segments[-1].lower() == "amp":
        segments.pop()
    if segments and segments[0].lower() == "amp":
        segments.pop(0)
    if segments and segments[-1].lower().endswith(".amp.html"):
        segments[-1] = segments[-1][: -len(".amp.html")] + ".html"
    path = "/" + "/".join(segments)

    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if _keep_param(k)]
    )
    # The scheme is not part of an article's identity: http and https copies of
    # a page are the same article.
    return urlunsplit(("https", netloc, path if path != "/" else "/", query, ""))


def article_id(canonical: str) -> str:
    """A stable 64-bit id (16 hex digits) for a canonical URL."""
    return xxhash.xxh3_64_hexdigest(canonical.encode("utf-8"))
