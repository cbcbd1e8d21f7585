"""Seed-format documents: parse_document and DocumentSource never raise, they reject clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newswire.model import Article
from newswire.publisher import validate
from newswire.source import Document, Reject
from producers.documents import DocumentSource, parse_document
from tests.unit.support import ARTICLES, SEED

LIMIT = 100_000
GOOD = b"---\ntitle: Hello\noriginalUrl: https://e.com/a\n---\n\nThe body.\n"


def parse(data: bytes, *, max_bytes: int = LIMIT) -> Document | Reject:
    return parse_document("doc.txt", data, max_bytes=max_bytes)


def rejected(data: bytes, *, max_bytes: int = LIMIT) -> Reject:
    result = parse(data, max_bytes=max_bytes)
    assert isinstance(result, Reject), f"expected a reject, got {result}"
    assert result.origin == "doc.txt"
    assert result.reason
    return result


def test_a_good_document_parses() -> None:
    document = parse(GOOD)
    assert isinstance(document, Document)
    assert document.origin == "doc.txt"
    assert document.fields == {
        "title": "Hello",
        "originalUrl": "https://e.com/a",
        "body": "The body.",
    }


def test_the_seed_parses_with_an_empty_body() -> None:
    document = parse_document(str(SEED), SEED.read_bytes(), max_bytes=LIMIT)
    assert isinstance(document, Document)
    assert document.fields["body"] == ""
    assert document.fields["provider"] == {"name": "Security", "domain": "securityinfowatch.com"}
    assert len(document.fields["related"]) == 2


def test_the_body_after_the_front_matter_is_kept_verbatim_inside() -> None:
    body = "First paragraph.\n\n## A heading\n\n- item --- with dashes\n---\nafter a rule"
    document = parse(b"---\ntitle: T\n---\n" + body.encode() + b"\n\n")
    assert isinstance(document, Document)
    assert document.fields["body"] == body


def test_a_body_field_in_the_front_matter_wins_over_the_markdown() -> None:
    document = parse(b"---\ntitle: T\nbody: from the front matter\n---\nignored\n")
    assert isinstance(document, Document)
    assert document.fields["body"] == "from the front matter"


def test_a_utf8_bom_is_accepted() -> None:
    document = parse("\ufeff".encode() + GOOD)
    assert isinstance(document, Document)
    assert document.fields["title"] == "Hello"


def test_crlf_line_endings_parse_like_lf() -> None:
    crlf = parse(GOOD.replace(b"\n", b"\r\n"))
    lf = parse(GOOD)
    assert isinstance(crlf, Document)
    assert isinstance(lf, Document)
    assert crlf.fields["title"] == lf.fields["title"]
    assert crlf.fields["body"].replace("\r\n", "\n") == lf.fields["body"]
    assert not crlf.fields["body"].endswith("\r")


def test_front_matter_may_end_with_the_yaml_document_end_marker() -> None:
    document = parse(b"---\ntitle: T\n...\nbody\n")
    assert isinstance(document, Document)
    assert document.fields == {"title": "T", "body": "body"}


def test_unicode_text_is_kept() -> None:
    document = parse("---\ntitle: Café — Zürich 東京\n---\nRTÉ\n".encode())
    assert isinstance(document, Document)
    assert document.fields["title"] == "Café — Zürich 東京"
    assert document.fields["body"] == "RTÉ"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"---\ntitle: ok\n  bad: indent\n---\n", 3),
        (b"---\ntitle: ok\nurl: x\nfoo: [unclosed\nbar: 1\n---\n", 5),
        (b"---\ntitle: ok\n\tfoo: 1\n---\n", 3),
        (b'---\ntitle: "unterminated\nx: 1\n---\n', 4),
    ],
    ids=["indent", "unclosed_flow", "tab", "unterminated_quote"],
)
def test_invalid_yaml_is_rejected_with_the_line_of_the_file(data: bytes, line: int) -> None:
    reject = rejected(data)
    assert reject.kind == "yaml"
    assert "invalid YAML" in reject.reason
    reported = re.search(r"line (\d+)", reject.reason)
    assert reported is not None, reject.reason
    # The problem is on (or, for an unclosed construct, right after) the given file line.
    assert int(reported.group(1)) in (line - 1, line)


def test_the_reported_yaml_line_counts_the_opening_dashes() -> None:
    lines = ["---", "title: ok", "a: 1", "b: 2", "c: 3", "  d: 4", "---"]
    reject = rejected(("\n".join(lines) + "\n").encode())
    assert "line 6" in reject.reason  # "  d: 4" is the 6th line of the file


def test_python_object_tags_are_not_constructed() -> None:
    reject = rejected(b"---\ntitle: !!python/object/apply:os.system ['true']\n---\n")
    assert reject.kind == "yaml"


@pytest.mark.parametrize(
    ("front", "kind_name"),
    [(b"- a\n- b\n", "list"), (b"just a string\n", "str"), (b"42\n", "int")],
)
def test_front_matter_that_is_not_a_mapping_is_rejected(front: bytes, kind_name: str) -> None:
    reject = rejected(b"---\n" + front + b"---\nbody\n")
    assert reject.kind == "format"
    assert kind_name in reject.reason
    assert "not a mapping" in reject.reason


def test_empty_front_matter_is_rejected() -> None:
    assert rejected(b"---\n---\nbody\n").kind == "format"


@pytest.mark.parametrize(
    "data", [b"title: x\n", b"Just some prose.\n", b"\n---\ntitle: x\n---\n", b"--- \ntitle"]
)
def test_a_document_without_front_matter_is_rejected(data: bytes) -> None:
    reject = rejected(data)
    assert reject.kind == "format"


def test_no_front_matter_reason_says_what_is_expected() -> None:
    assert "front matter" in rejected(b"title: x\n").reason


def test_unclosed_front_matter_is_rejected() -> None:
    reject = rejected(b"---\ntitle: x\noriginalUrl: https://e.com/a\n")
    assert reject.kind == "format"
    assert "not closed" in reject.reason


@pytest.mark.parametrize("data", [b"", b"   ", b"\n\n\n", b"\t\r\n"])
def test_an_empty_document_is_rejected(data: bytes) -> None:
    reject = rejected(data)
    assert reject.kind == "empty"
    assert "empty" in reject.reason


def test_binary_garbage_with_nul_bytes_is_rejected() -> None:
    reject = rejected(b"---\ntitle: x\x00\x01\x02\n---\n" + bytes(range(256)))
    assert reject.kind == "binary"
    assert "NUL" in reject.reason


def test_non_utf8_bytes_are_rejected_with_the_offset() -> None:
    data = "---\ntitle: Caf\xe9\n---\n".encode("latin-1")
    reject = rejected(data)
    assert reject.kind == "encoding"
    assert "UTF-8" in reject.reason
    assert str(data.index(b"\xe9")) in reject.reason


def test_an_oversized_document_is_rejected_with_the_limit() -> None:
    data = GOOD + b"x" * 2_000
    reject = rejected(data, max_bytes=1_000)
    assert reject.kind == "too_large"
    assert str(len(data)) in reject.reason
    assert "1000" in reject.reason
    assert "limit" in reject.reason


def test_a_document_at_the_limit_is_accepted() -> None:
    assert isinstance(parse(GOOD, max_bytes=len(GOOD)), Document)


def test_reject_str_names_origin_field_and_reason() -> None:
    text = str(Reject("a.txt", "title", "required field is missing"))
    assert "a.txt" in text
    assert "'title'" in text
    assert "required field is missing" in text


# -- DocumentSource --------------------------------------------------------------------------------


def write(path: Path, data: bytes = GOOD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_directories_are_walked_recursively_in_sorted_order(tmp_path: Path) -> None:
    for rel in ["b.txt", "a.md", "sub/z.txt", "sub/deeper/c.markdown", "aa/y.txt", "C.TXT"]:
        write(tmp_path / rel)
    files = DocumentSource([tmp_path]).files()
    relative = [p.relative_to(tmp_path).as_posix() for p in files]
    assert relative == sorted(relative)
    assert set(relative) == {
        "b.txt",
        "a.md",
        "sub/z.txt",
        "sub/deeper/c.markdown",
        "aa/y.txt",
        "C.TXT",
    }


def test_hidden_files_hidden_dirs_readme_and_other_suffixes_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "keep.txt")
    for rel in [
        ".hidden.txt",
        ".git/obj.txt",
        "sub/.cache/x.txt",
        "README.md",
        "sub/readme.md",
        "notes.json",
        "image.png",
    ]:
        write(tmp_path / rel)
    assert [p.name for p in DocumentSource([tmp_path]).files()] == ["keep.txt"]


def test_explicit_files_of_any_extension_are_read(tmp_path: Path) -> None:
    odd = write(tmp_path / "article.yaml")
    also = write(tmp_path / "noext")
    source = DocumentSource([odd, also])
    assert source.files() == [odd, also]
    items = list(source)
    assert all(isinstance(item, Document) for item in items)
    assert [item.origin for item in items] == [str(odd), str(also)]


def test_explicit_files_keep_their_order_before_directory_contents(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    write(directory / "a.txt")
    explicit = write(tmp_path / "z.txt")
    assert DocumentSource([explicit, directory]).files() == [explicit, directory / "a.txt"]


def test_count_matches_the_items_yielded(tmp_path: Path) -> None:
    for i in range(5):
        write(tmp_path / f"d{i}.txt")
    write(tmp_path / "bad.txt", b"no front matter")
    source = DocumentSource([tmp_path])
    items = list(source)
    assert source.count() == len(items) == 6
    assert sum(isinstance(i, Reject) for i in items) == 1


def test_a_missing_file_is_a_reject_not_an_exception(tmp_path: Path) -> None:
    missing = tmp_path / "gone.txt"
    (item,) = list(DocumentSource([missing]))
    assert isinstance(item, Reject)
    assert item.kind == "io"
    assert item.origin == str(missing)


def test_an_oversized_file_is_rejected_before_it_is_read(tmp_path: Path) -> None:
    big = write(tmp_path / "big.txt", GOOD + b"x" * 5_000)
    (item,) = list(DocumentSource([big], max_bytes=1_000))
    assert isinstance(item, Reject)
    assert item.kind == "too_large"
    assert str(big.stat().st_size) in item.reason


def test_bad_documents_do_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path / "1.txt", b"\x00\x01")
    write(tmp_path / "2.txt")
    write(tmp_path / "3.txt", b"---\n[\n---\n")
    write(tmp_path / "4.txt")
    kinds = [type(i).__name__ for i in DocumentSource([tmp_path])]
    assert kinds == ["Reject", "Document", "Reject", "Document"]


def test_the_fixture_directory_yields_every_fixture() -> None:
    items = list(DocumentSource([ARTICLES]))
    names = [Path(i.origin).name for i in items]
    assert names == sorted(p.name for p in ARTICLES.glob("*.txt"))
    # Every fixture, even the bad ones, is well-formed at the document level.
    assert all(isinstance(i, Document) for i in items)


# -- validation into articles (newswire.publisher.validate) --------------------------------------

BASE = {
    "title": "A title",
    "originalUrl": "https://www.example.com/news/a",
    "publishedDateTime": "2021-02-18T21:45:00Z",
}


def validated(**changes: object) -> Article | Reject:
    fields = {**BASE, **changes}
    return validate(Document("doc.txt", {k: v for k, v in fields.items() if v is not None}))


def test_a_valid_document_becomes_an_article() -> None:
    result = validated()
    assert isinstance(result, Article)
    assert result.title == "A title"


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"title": None}, "title", "required field is missing"),
        ({"title": ""}, "title", "at least 1 character"),
        ({"title": "   "}, "title", "at least 1 character"),
        ({"originalUrl": None}, "originalUrl", "required field is missing"),
        ({"originalUrl": "/news/story.html"}, "originalUrl", "absolute http(s) URL"),
        ({"originalUrl": "mailto:desk@e.com"}, "originalUrl", "absolute http(s) URL"),
        ({"originalUrl": "https://e.com:99999/a"}, "originalUrl", ""),
        ({"webUrl": "javascript:void(0)"}, "webUrl", "absolute http(s) URL"),
        ({"publishedDateTime": "yesterday"}, "publishedDateTime", "ISO-8601"),
        ({"publishedDateTime": "2021-02-30"}, "publishedDateTime", "ISO-8601"),
        ({"quality": "high"}, "quality", "integer"),
        ({"images": [{"width": 3}]}, "images.0.url", "required field is missing"),
        (
            {"related": [{"publishedDateTime": "soon"}]},
            "related.0.publishedDateTime",
            "ISO-8601",
        ),
    ],
    ids=[
        "missing_title",
        "empty_title",
        "blank_title",
        "missing_url",
        "relative_url",
        "mailto_url",
        "bad_port_url",
        "javascript_web_url",
        "word_date",
        "impossible_date",
        "text_quality",
        "image_without_url",
        "related_bad_date",
    ],
)
def test_an_invalid_document_is_rejected_naming_the_field(
    changes: dict[str, object], field: str, reason: str
) -> None:
    result = validated(**changes)
    assert isinstance(result, Reject)
    assert result.origin == "doc.txt"
    assert result.field == field
    assert reason in result.reason
    assert result.reason  # never empty
    assert not result.reason.startswith("Value error")  # pydantic's prefix is removed


def test_a_reject_reason_never_shows_the_secured_value() -> None:
    secret = "TOP-SECRET-TOKEN-123"
    result = validated(secured=secret, title="")
    assert isinstance(result, Reject)
    assert secret not in str(result)


@pytest.mark.parametrize(
    ("name", "field", "reason"),
    [
        ("bad_missing_title.txt", "title", "required field is missing"),
        ("bad_relative_url.txt", "originalUrl", "/news/story.html"),
    ],
)
def test_bad_fixtures_are_rejected_with_field_and_reason(
    name: str, field: str, reason: str
) -> None:
    path = ARTICLES / name
    document = parse_document(str(path), path.read_bytes(), max_bytes=LIMIT)
    assert isinstance(document, Document)
    result = validate(document)
    assert isinstance(result, Reject)
    assert result.origin == str(path)
    assert result.field == field
    assert reason in result.reason


def test_every_good_fixture_validates() -> None:
    for path in sorted(ARTICLES.glob("*.txt")):
        if path.name.startswith("bad_"):
            continue
        document = parse_document(str(path), path.read_bytes(), max_bytes=LIMIT)
        assert isinstance(document, Document)
        assert isinstance(validate(document), Article), path.name
