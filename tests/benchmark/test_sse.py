"""SSE parsing: chunks split anywhere (inside UTF-8 characters, between CR and LF), spec details."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.wire.sse import DONE, Event, MalformedEvent, SSEParser, parse_all

TGI_STREAM = "".join(
    f"data:{json.dumps({'index': i, 'token': {'text': t}}, ensure_ascii=False)}\n\n"
    for i, t in enumerate([" café", " 世界", " 🙂", " naïve"])
).encode()
OPENAI_STREAM = (
    b'data: {"choices":[{"delta":{"content":"\xc3\xa9"}}]}\r\n\r\n'
    b": keep-alive comment\r\n\r\n"
    b'data: {"choices":[],"usage":{"completion_tokens":1}}\r\r'
    b"data: [DONE]\n\n"
)


def test_tgi_stream_whole() -> None:
    events = parse_all([TGI_STREAM])
    assert [json.loads(e.data)["token"]["text"] for e in events] == [" café", " 世界", " 🙂", " naïve"]


@pytest.mark.parametrize("stream", [TGI_STREAM, OPENAI_STREAM], ids=["tgi", "openai-crlf-cr"])
def test_split_at_every_offset(stream: bytes) -> None:
    expected = parse_all([stream])
    assert expected
    for cut in range(len(stream) + 1):
        assert parse_all([stream[:cut], stream[cut:]]) == expected, cut
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == expected


def test_openai_done_and_line_endings() -> None:
    events = parse_all([OPENAI_STREAM])
    assert [e.data for e in events][-1] == DONE
    assert len(events) == 3  # the comment-only block dispatches nothing


def test_cr_then_lf_in_next_chunk_is_one_line_ending() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []  # an empty chunk must not forget the pending CR
    assert parser.feed(b"\n") == []  # CRLF, not an empty line
    assert parser.feed(b"\r\n") == [Event(data="a")]


def test_fields_multiline_data_bom_and_retry() -> None:
    stream = "\ufeffevent: token\nid: 7\nretry: 1500\ndata: line1\ndata:line2\nignored-field: x\n\n".encode()
    assert parse_all([stream]) == [Event(data="line1\nline2", event="token", id="7", retry=1500)]


def test_unterminated_event_is_dropped_and_reported_as_partial() -> None:
    parser = SSEParser()
    events = parser.feed(b'data: {"index":0}\n\ndata: {"ind')
    assert len(events) == 1
    assert parser.has_partial
    assert parser.close() == []


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(MalformedEvent):
        SSEParser().feed(b"data: \xff\xfe\n\n")


def test_stream_ending_inside_a_character_is_malformed() -> None:
    parser = SSEParser()
    parser.feed("data: 世".encode()[:-1])
    with pytest.raises(MalformedEvent):
        parser.close()


def test_unknown_field_names_are_ignored_whatever_they_sort_next_to() -> None:
    # WHATWG: only data, event, id and retry mean anything; any other field name is ignored.
    stream = b"a: 1\ndump: 2\nev: 3\nfoo: 4\nping: 5\nzzz: 6\ndata: d\n\n"
    assert parse_all([stream]) == [Event(data="d")]


def test_blank_lines_before_any_field_dispatch_nothing() -> None:
    assert parse_all([b"\n\r\n\ndata: a\n\n"]) == [Event(data="a")]
    assert SSEParser().has_partial is False


def test_a_line_feed_first_in_the_buffer_ends_the_line_before_a_later_cr() -> None:
    assert parse_all([b"data: a\n", b"\ndata: b\r\r"]) == [Event(data="a"), Event(data="b")]
    assert parse_all([b"data: a\ndata: b\r\r"]) == [Event(data="a\nb")]


def test_only_a_line_feed_joins_a_carriage_return() -> None:
    # After CR a tab starts the next line: "\tdata" is an unknown field, not a second data line.
    assert parse_all([b"data: a\r\tdata: b\r\r"]) == [Event(data="a")]


def test_long_line_ending_in_cr_at_a_chunk_edge() -> None:
    long = "x" * 300
    parser = SSEParser()
    assert parser.feed(f"data: {long}\r".encode()) == []
    assert parser.feed(b"\ndata: y\n\n") == [Event(data=f"{long}\ny")]


def test_partial_means_any_unfinished_event() -> None:
    parser = SSEParser()
    parser.feed(b"data: a\n")  # a field line, but no blank line yet
    assert parser.has_partial is True
    parser.feed(b"\n")
    assert parser.has_partial is False
    parser.feed("世".encode()[:2])  # half a character, nothing decoded yet
    assert parser.has_partial is True


def test_only_the_streams_first_bom_is_dropped() -> None:
    # WHATWG: one leading U+FEFF is ignored; one at the start of a later chunk is data.
    parser = SSEParser()
    assert parser.feed("\ufeffdata: ".encode()) == []
    assert parser.feed("\ufeffa\n\n".encode()) == [Event(data="\ufeffa")]


def test_events_are_immutable() -> None:
    (event,) = parse_all([b"data: a\n\n"])
    with pytest.raises(AttributeError):
        event.data = "b"  # type: ignore[misc]


texts = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=30)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.lists(texts, min_size=1, max_size=3), min_size=1, max_size=5),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_property_random_events_and_cuts(datas: list[list[str]], eol: str, cuts: list[int]) -> None:
    stream = "".join("".join(f"data: {line}{eol}" for line in lines) + eol for lines in datas).encode()
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    events = parse_all([stream[a:b] for a, b in itertools.pairwise(bounds)])
    assert [e.data for e in events] == ["\n".join(lines) for lines in datas]
