"""JSON lines: every line is a document or a reject naming its line; cutting into parts
for the worker processes loses, repeats and renumbers nothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from newswire.publisher import validate
from newswire.source import Document, Reject
from producers.jsonl import JsonLinesSource

GOOD = {"title": "Hello", "originalUrl": "https://example.com/a", "topics": ["x"]}


def line(**fields: object) -> bytes:
    return json.dumps({**GOOD, **fields}).encode() + b"\n"


def items(data: bytes, tmp_path: Path, **options: int) -> list[Document | Reject]:
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    return list(JsonLinesSource([path], **options))  # type: ignore[arg-type]


def rejects(found: list[Document | Reject]) -> dict[int | None, Reject]:
    return {r.line: r for r in found if isinstance(r, Reject)}


def test_each_line_is_a_document_with_its_line_number(tmp_path: Path) -> None:
    found = items(line(title="one") + b"\n  \n" + line(title="two"), tmp_path)
    assert [(d.line, d.fields["title"]) for d in found if isinstance(d, Document)] == [
        (1, "one"),
        (4, "two"),
    ]
    assert all(isinstance(d, Document) for d in found)  # blank lines are skipped
    document = found[0]
    assert isinstance(document, Document)
    assert document.origin == str(tmp_path / "in.jsonl")
    assert document.where == f"{tmp_path / 'in.jsonl'}:1"
    assert not isinstance(validate(document), Reject)


def test_the_last_line_needs_no_newline_and_a_bom_is_accepted(tmp_path: Path) -> None:
    found = items(b"\xef\xbb\xbf" + line(title="a") + line(title="b").rstrip(b"\n"), tmp_path)
    assert [d.fields["title"] for d in found if isinstance(d, Document)] == ["a", "b"]


@pytest.mark.parametrize(
    ("bad", "kind", "reason"),
    [
        (b'{"title": "x", oops}', "json", "invalid JSON at column 16"),
        (b"[1, 2]", "format", "a JSON array, not an object"),
        (b'"just a string"', "format", "a JSON string, not an object"),
        (b'{"title": "caf\xe9"}', "encoding", "not UTF-8 text: invalid byte at column 15"),
        (b'{"title": "a\x00b"}', "binary", "NUL bytes"),
    ],
)
def test_a_bad_line_is_rejected_with_its_line_and_the_others_kept(
    tmp_path: Path, bad: bytes, kind: str, reason: str
) -> None:
    found = items(line(title="first") + bad + b"\n" + line(title="third"), tmp_path)
    assert [d.line for d in found if isinstance(d, Document)] == [1, 3]
    reject = rejects(found)[2]
    assert reject.kind == kind
    assert reason in reject.reason
    assert str(reject).startswith(f"{tmp_path / 'in.jsonl'}:2: ")


def test_missing_fields_are_rejected_at_validation_naming_field_and_line(tmp_path: Path) -> None:
    (document,) = items(b'{"originalUrl": "https://e.com/x"}\n', tmp_path)
    assert isinstance(document, Document)
    reject = validate(document)
    assert isinstance(reject, Reject)
    assert (reject.field, reject.line, reject.reason) == ("title", 1, "required field is missing")


@pytest.mark.parametrize("data", [b"", b"\n\n   \n"])
def test_an_empty_file_is_one_reject(tmp_path: Path, data: bytes) -> None:
    (reject,) = items(data, tmp_path)
    assert isinstance(reject, Reject)
    assert reject.kind == "empty"


def test_binary_garbage_is_one_reject_for_the_file(tmp_path: Path) -> None:
    (reject,) = items(bytes(range(256)) * 40, tmp_path)
    assert isinstance(reject, Reject)
    assert (reject.kind, reject.line) == ("binary", None)


def test_a_missing_file_is_a_reject(tmp_path: Path) -> None:
    (reject,) = JsonLinesSource([tmp_path / "nope.jsonl"])
    assert isinstance(reject, Reject)
    assert reject.kind == "io"


def test_an_oversized_line_is_rejected_with_the_limit(tmp_path: Path) -> None:
    big = line(excerpt="x" * 5000)
    found = items(line() + big + line(), tmp_path, max_bytes=2000, chunk_bytes=64 * 1024)
    reject = rejects(found)[2]
    assert reject.kind == "too_large"
    assert "over the limit of 2000 bytes" in reject.reason
    assert [d.line for d in found if isinstance(d, Document)] == [1, 3]


def test_a_line_longer_than_a_part_is_skipped_without_losing_the_count(tmp_path: Path) -> None:
    big = line(excerpt="x" * 20_000)  # spans many 1 KiB blocks
    data = line(title="a") + big + line(title="b") + big.rstrip(b"\n")
    found = items(data, tmp_path, max_bytes=4000, chunk_bytes=1024)
    assert [(d.line, d.fields["title"]) for d in found if isinstance(d, Document)] == [
        (1, "a"),
        (3, "b"),
    ]
    assert {n: r.kind for n, r in rejects(found).items()} == {2: "too_large", 4: "too_large"}
    assert str(len(big) - 1) in rejects(found)[2].reason  # its true size, newline excluded


@pytest.mark.parametrize("chunk_bytes", [1024, 1500, 4096, 1 << 20])
def test_parts_cover_every_line_once_whatever_the_part_size(
    tmp_path: Path, chunk_bytes: int
) -> None:
    data = b"".join(line(title=f"t{i}", excerpt="e" * (i * 37 % 300)) for i in range(200))
    data += b"not json\n"
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    source = JsonLinesSource([path], chunk_bytes=chunk_bytes)
    parts = list(source.split())
    if chunk_bytes < len(data):
        assert len(parts) > 1
    found = [item for part in parts for item in part]
    titles = [(d.line, d.fields["title"]) for d in found if isinstance(d, Document)]
    assert titles == [(i + 1, f"t{i}") for i in range(200)]
    assert [r.line for r in found if isinstance(r, Reject)] == [201]


def test_stdin_is_read_as_json_lines() -> None:
    source = JsonLinesSource(["-"], stdin=io.BytesIO(line(title="piped")))
    (document,) = source
    assert isinstance(document, Document)
    assert (document.origin, document.line, document.fields["title"]) == ("<stdin>", 1, "piped")


def test_a_directory_yields_its_json_lines_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_bytes(line(title="a"))
    (tmp_path / "b.ndjson").write_bytes(line(title="b"))
    (tmp_path / "notes.txt").write_bytes(b"not for me")
    titles = sorted(d.fields["title"] for d in JsonLinesSource([tmp_path]))  # type: ignore[union-attr]
    assert titles == ["a", "b"]


def test_a_pipe_yields_what_has_arrived_without_waiting_for_a_full_part() -> None:
    """`newswire run -` fed at 1,000 lines/s must not hold lines until 1 MiB is in."""
    import os
    import threading

    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    writer = os.fdopen(write_fd, "wb", buffering=0)
    thread = threading.Thread()
    try:
        source = JsonLinesSource(["-"], chunk_bytes=1024 * 1024, stdin=reader)
        parts = source.split()
        writer.write(line(title="first") + line(title="second"))
        got: list[list[Document | Reject]] = []
        thread = threading.Thread(target=lambda: got.append(list(next(parts))), daemon=True)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the part waited for a full megabyte or the end of input"
        assert [d.fields["title"] for d in got[0] if isinstance(d, Document)] == ["first", "second"]
        writer.write(line(title="third"))
        writer.close()
        rest = [d.fields["title"] for part in parts for d in part if isinstance(d, Document)]
        assert rest == ["third"]
    finally:
        if not writer.closed:  # first: the end of input releases a read still waiting
            writer.close()
        if thread.is_alive():
            thread.join(timeout=10)
        reader.close()


def test_a_small_part_is_encoded_by_the_publisher_a_large_one_by_a_worker() -> None:
    from newswire.publisher import INLINE_PART_BYTES, _small
    from producers.jsonl import JsonLinesPart

    line = b'{"title": "t"}\n'
    few = JsonLinesPart("x", 1, line * 3, 1024)
    many = JsonLinesPart("x", 1, line * (INLINE_PART_BYTES // len(line) + 1), 1024)
    assert few.size() == 3 * len(line)
    assert _small(few)
    assert not _small(many)

    class Unsized(JsonLinesPart):
        def size(self) -> None:  # type: ignore[override]
            return None

    assert not _small(Unsized("x", 1, line, 1024))  # unknown size: a worker's job
