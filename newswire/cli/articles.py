"""``newswire articles list|show|search``: query the store (SQLite or PostgreSQL).

The store is ``--store URL`` or ``NEWSWIRE_STORE__URL`` (default
``sqlite:///newswire.db``), opened by the store registered for its scheme
(``newswire.stores``) as a reader; a SQLite file that does not exist is an
error, not a new empty store. Output is a table, or JSON with ``--json`` (times ISO-8601 UTC).
``secured`` is never printed. Exit status: 0, 1 when ``show`` finds nothing,
2 for a bad option, 3 when the store cannot be opened or read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from newswire.cli.common import fail, load_settings, out, print_json
from newswire.errors import NewswireError
from newswire.store import ArticleFilter, StoreReader, open_reader

articles_app = typer.Typer(
    help="Query the stored articles: list, show, search.", no_args_is_help=True
)

EXIT_NOT_FOUND = 1

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Store URL: sqlite:///PATH or postgresql://… "
        "[env NEWSWIRE_STORE__URL, default sqlite:///newswire.db]",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LimitOption = Annotated[int, typer.Option("--limit", "-n", min=1, help="At most this many.")]

_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """A date, a date and time (naive means UTC), or an age: ``30m``, ``12h``, ``7d``, ``2w``."""
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2).lower()]
        return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(**{unit: amount})
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a date (2024-05-01), a date and time (2024-05-01T12:00Z) "
            "or an age (30m, 12h, 7d, 2w)"
        ) from None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


@contextmanager
def _store(url: str | None) -> Iterator[StoreReader]:
    try:
        settings = load_settings(store__url=url)
        store = open_reader(settings.section("store").url, settings)
    except NewswireError as exc:
        raise fail(exc) from exc
    try:
        yield store
    except NewswireError as exc:
        raise fail(exc) from exc
    finally:
        store.close()


def _print_json(value: Any) -> None:
    print_json(value)


def _when(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "-"


def _summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("published (UTC)", no_wrap=True)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("provider", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("lang", no_wrap=True)
    table.add_column("title", overflow="fold", ratio=1)
    for row in rows:
        table.add_row(
            _when(row["published_at"]),
            row["id"],
            escape(row["provider_domain"] or row["provider_name"] or ""),
            row["language"] or "",
            escape(row["title"]),
        )
    return table


@articles_app.command("list")
def list_articles(
    since: Annotated[
        str | None,
        typer.Option(help="Published at or after: 2024-05-01, 2024-05-01T12:00Z, or 7d/12h/30m."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option(help="Provider domain or name, or registered domain.")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="One of the article's topics.")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 code, e.g. en.")] = None,
    limit: LimitOption = 20,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """List stored articles, newest publication first."""
    where = ArticleFilter(
        since=parse_since(since) if since else None,
        provider=provider,
        topic=topic,
        language=language,
        limit=limit,
    )
    with _store(store) as opened:
        rows = opened.list_articles(where)
        if as_json:
            _print_json(rows)
        else:
            out.print(_summary_table(rows, f"{len(rows)} article(s) in {opened.url}"))


@articles_app.command("search")
def search_articles(
    text: Annotated[
        str,
        typer.Argument(
            help='Words that must all appear (title, excerpt or body); "a phrase", '
            "-excluded, a or b."
        ),
    ],
    limit: LimitOption = 20,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """Full-text search (SQLite FTS5 / PostgreSQL full text), best match first."""
    with _store(store) as opened:
        rows = opened.search(text, limit=limit)
        if as_json:
            _print_json(rows)
        else:
            out.print(_summary_table(rows, f"{len(rows)} match(es) for {text!r}"))


def _article_id_of(value: str) -> str:
    """An article id, or the id of the article a URL canonicalises to."""
    if value.startswith(("http://", "https://")):
        from newswire.urls import article_id, canonical_url

        return article_id(canonical_url(value))
    return value.strip()


@articles_app.command("show")
def show_article(
    article: Annotated[str, typer.Argument(help="Article id (or any URL of the article).")],
    body: Annotated[bool, typer.Option("--body", help="Print the whole body.")] = False,
    store: StoreOption = None,
    as_json: JsonOption = False,
) -> None:
    """One article with its revisions, sightings (duplicates) and related articles.

    The id of a duplicate shows the article it duplicates.
    """
    try:
        wanted = _article_id_of(article)
    except NewswireError as exc:
        raise typer.BadParameter(str(exc)) from None
    with _store(store) as opened:
        found = opened.get_article(wanted)
        via = None
        if found is None:
            via = opened.find_duplicate(wanted)
            if via is not None:
                found = opened.get_article(via["duplicate_of"])
        if found is None:
            if as_json:
                _print_json(None)
            else:
                out.print(f"no article {wanted} in {opened.url}")
            raise typer.Exit(EXIT_NOT_FOUND)
        if as_json:
            _print_json({**found, "via_duplicate": via} if via else found)
            return
        if via is not None:
            out.print(
                f"{wanted} is a duplicate ({via['reason']}, similarity {via['similarity']:.2f}) "
                f"of {found['id']}:"
            )
        _print_article(found, full_body=body)


def _print_article(article: dict[str, Any], *, full_body: bool) -> None:
    fields = Table(show_header=False, title=escape(article["title"]), title_justify="left")
    fields.add_column(style="bold", no_wrap=True)
    fields.add_column(overflow="fold")
    rows = [
        ("id", article["id"]),
        ("published", article["published_at"] or "-"),
        ("provider", f"{article['provider_name']} ({article['provider_domain']})"),
        ("registered domain", article["registered_domain"]),
        ("url", article["url"]),
        ("canonical url", article["canonical_url"]),
        ("web url", article["web_url"]),
        ("language", f"{article['language']} ({article['language_score'] or 0:.2f})"),
        ("topics", ", ".join(article["topics"] or [])),
        ("words", f"{article['word_count']} (~{article['reading_time_s']}s to read)"),
        ("quality / heat", f"{article['quality']} / {article['heat']}"),
        ("category / type", f"{article['category']} / {article['type']}"),
        ("images", "\n".join(i["url"] for i in article["images"] or [])),
        ("source", article["source"]),
        ("ingested / stored", f"{article['ingested_at']} / {article['stored_at']}"),
    ]
    for name, value in rows:
        fields.add_row(name, escape(str(value or "")))
    out.print(fields)
    if article["excerpt"]:
        out.print(escape(article["excerpt"]))
    text = article["body"] or ""
    if text:
        out.print()
        out.print(escape(text if full_body or len(text) <= 600 else text[:600] + " … (--body)"))
    revisions = article.get("history") or []
    if len(revisions) > 1:
        versions = Table(
            "published (UTC)",
            "stored (UTC)",
            "title",
            "changed",
            title=f"revisions ({len(revisions)}; updated {_when(article.get('updated_at'))})",
            title_justify="left",
        )
        for rev in revisions:
            changed = ", ".join(rev["changed"]) or "first version"
            versions.add_row(
                _when(rev["published_at"]),
                _when(rev["stored_at"]),
                escape(rev["title"] or "") + (" (current)" if rev["current"] else ""),
                changed,
            )
        out.print(versions)
    else:
        out.print("revisions (1): never updated")
    related = Table(title="related", title_justify="left")
    related.add_column("related title", ratio=2)
    related.add_column("published (UTC)")
    related.add_column("provider")
    related.add_column("url", overflow="fold", ratio=2)
    for link in article["related"]:
        provider = link.get("provider_domain") or link.get("provider_name") or ""
        title = escape(link["title"] or "")
        if link.get("excerpt"):
            title += "\n" + escape(link["excerpt"])
        urls = [link["url"]] + [
            u
            for u in (link.get("amp_web_url"), link.get("cdn_amp_web_url"))
            if u and u != link["url"]
        ]
        if link.get("images"):
            urls += [f"image: {i['url']}" for i in link["images"]]
        related.add_row(
            title, _when(link.get("published_at")), escape(provider), escape("\n".join(urls))
        )
    sightings = article.get("sightings") or []
    seen = Table(title=f"sightings ({sum(s['count'] for s in sightings)})", title_justify="left")
    seen.add_column("url", overflow="fold", ratio=1)
    for name in ("reason", "times", "first seen", "last seen", "similarity"):
        seen.add_column(name)
    for group in sightings:
        seen.add_row(
            escape(group["url"]),
            group["reason"],
            str(group["count"]),
            _when(group["first_seen"]),
            _when(group["last_seen"]),
            f"{group['similarity'] or 0:.2f}",
        )
    out.print(related if article["related"] else "no related links")
    out.print(seen if sightings else "no duplicates")
