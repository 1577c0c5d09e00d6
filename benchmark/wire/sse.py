"""Incremental server-sent-events parser (the WHATWG ``text/event-stream`` rules).

TGI's ``/generate_stream`` and OpenAI-compatible servers answer with SSE; over SageMaker the same bytes
arrive as PayloadPart chunks cut at arbitrary offsets. The parser therefore accepts bytes split
anywhere: inside a multi-byte UTF-8 character, between ``\\r`` and ``\\n``, between the two newlines
that end an event.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

DONE = "[DONE]"  # OpenAI's end-of-stream marker


class MalformedEvent(ValueError):  # noqa: N818 - the name says what the bytes are
    """The byte stream is not valid UTF-8, or an event's data is not what the protocol requires."""


@dataclass(frozen=True)
class Event:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Feed bytes, get the complete events they finish. Comments and empty-data events are skipped."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._text = ""  # undecoded-line buffer
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._saw_field = False
        self._last_cr = False  # previous chunk ended with \r: a following \n belongs to it
        self._first = True

    def feed(self, chunk: bytes) -> list[Event]:
        try:
            text = self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise MalformedEvent(f"event stream is not UTF-8: {exc}") from None
        return self._feed_text(text)

    def _feed_text(self, text: str) -> list[Event]:
        if not text:
            return []
        if self._first:
            self._first = False
            text = text.removeprefix("\ufeff")
        if self._last_cr and text.startswith("\n"):
            text = text[1:]
        self._last_cr = False
        buffer = self._text + text
        events: list[Event] = []
        start = 0
        length = len(buffer)
        while start < length:
            # Nearest line terminator: \n, \r\n or a lone \r.
            lf = buffer.find("\n", start)
            cr = buffer.find("\r", start, lf if lf >= 0 else length)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < length and buffer[nxt] == "\n":
                    nxt += 1
                elif nxt == length:
                    self._last_cr = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._text = buffer[start:]
        return events

    def _line(self, line: str) -> Event | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._saw_field = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        if not self._saw_field:
            self._event = ""
            return None
        event = Event(data="\n".join(self._data), event=self._event or "message", id=self._id, retry=self._retry)
        self._data = []
        self._event = ""
        self._saw_field = False
        return event

    @property
    def has_partial(self) -> bool:
        """True when bytes of an unfinished event are buffered (a stream cut off mid-event)."""
        return bool(self._text or self._saw_field or self._decoder.getstate()[0])

    def close(self) -> list[Event]:
        """End of stream: flush a final line without terminator; an unterminated event is dropped (per spec)."""
        try:
            tail = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise MalformedEvent(f"event stream ends inside a UTF-8 character: {exc}") from None
        return self._feed_text(tail)


def parse_all(chunks: list[bytes]) -> list[Event]:
    """Parse a whole stream given as chunks (for tests and one-shot bodies)."""
    parser = SSEParser()
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()
