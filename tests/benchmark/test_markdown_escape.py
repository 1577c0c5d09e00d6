"""Markdown escaping judged by GitHub's own renderer (cmark-gfm): text from data must render as that text."""

from __future__ import annotations

import html
import re
from pathlib import Path

import cmarkgfm  # type: ignore[import-untyped]
import pytest
from cmarkgfm.cmark import Options  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.report import md_escape, write_report
from tests.benchmark.factories import RESULTS, result

ZWSP = "\u200b"
HOSTILE = [
    "[click](https://evil.example/x)",
    "![img](https://evil.example/i.png)",
    "*em* _em_ **strong** __strong__ ~~gone~~",
    "<img src=x onerror=alert(1)> <script>alert(1)</script>",
    "a | b | c",
    "www.evil.example and https://evil.example and someone@evil.example",
    "mailto:a@evil.example MAILTO:b xmpp:c@evil.example ftp://evil.example",
    "&lt;entity&gt; &copy; &#60;",
    "`code` $x^2$ \\*",
    "- list",
    " - nested list",
    "1. ordered",
    " 12) ordered",
    "+ list",
    "# heading",
    "> quote",
    "---",
    "line one\nline two\r\n\n| injected | row |",
    "[ref]: https://evil.example",
    "[^1] footnote",
]


def gfm(markdown: str) -> str:
    """HTML exactly as GitHub's cmark-gfm renders it, raw HTML kept so that any leak shows."""
    rendered: str = cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)
    return rendered


def expected(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=True).replace("&#x27;", "'")


def render_in_every_context(text: str) -> dict[str, list[str]]:
    """The escaped text as a table cell, a list item and a heading, and what each rendered to."""
    value = md_escape(text)
    doc = f"# {value}\n\n| a | b |\n|---|---|\n| {value} | x |\n\n- {value}\n- after\n"
    out = gfm(doc).replace(ZWSP, "")
    return {
        "h1": re.findall(r"<h1>(.*?)</h1>", out, flags=re.S),
        "td": re.findall(r"<td>(.*?)</td>", out, flags=re.S),
        "th": re.findall(r"<th>(.*?)</th>", out, flags=re.S),
        "li": re.findall(r"<li>(.*?)</li>", out, flags=re.S),
    }


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_as_itself_in_cells_list_items_and_headings(text: str) -> None:
    parts = render_in_every_context(text)
    want = expected(text)
    assert parts == {"h1": [want], "td": [want, "x"], "th": ["a", "b"], "li": [want, "after"]}


ALPHABET = [
    *"[]()!*_`<>&|~#-+=.:/@$\\^{}\"' \n\t1aZé",
    "www.",
    "http://",
    "HTTPS://",
    "mailto:",
    "xmpp:",
    "a@b.co",
    "&amp;",
    "<b>",
    "**",
    "---",
    "1. ",
]


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=12).map("".join).filter(lambda s: s.strip() != ""))
def test_any_mix_of_markdown_syntax_renders_as_itself(text: str) -> None:
    parts = render_in_every_context(text)
    want = expected(text)
    assert parts["h1"] == [want] and parts["td"] == [want, "x"] and parts["li"] == [want, "after"]


def test_numbers_and_the_report_text_stay_readable() -> None:
    # Numbers we formatted are not escaped; data is.
    assert md_escape("7b/gptq/ml.g5.2xlarge/tgi-3.3.6/us-east-1") == "7b/gptq/ml.g5.2xlarge/tgi-3.3.6/us-east-1"
    assert md_escape(12) == 12


def test_a_report_with_hostile_source_notes_and_title_keeps_its_tables(tmp_path: Path) -> None:
    hostile = " ".join(HOSTILE)
    evil = result("7b", "gptq", "ml.g5.2xlarge", 1, 10.0, 99.0)
    evil = evil.__class__(**{**evil.__dict__, "notes": (hostile,), "source": hostile})
    md = write_report([*RESULTS, evil], tmp_path, title=hostile).markdown.read_text()
    out = gfm(md).replace(ZWSP, "")
    # nothing but the template's own markup: tables, headings, lists, paragraphs
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", out))
    assert tags <= {"h1", "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "code", "br"}
    assert "<a " not in out and "<img" not in out and "<script" not in out
    assert f"<h1>{expected(hostile)}</h1>" in out
    # every row of the all-results table still has its header's cell count
    all_results = out.split("<h2>All results</h2>")[1].split("</table>")[0]
    header = len(re.findall(r"<th[ >]", all_results))
    rows = re.findall(r"<tr>(.*?)</tr>", all_results.split("</thead>")[1], flags=re.S)
    assert len(rows) == len(RESULTS) + 1
    assert all(len(re.findall(r"<td[ >]", row)) == header for row in rows)
    assert f"<td>{expected(hostile)}</td>" in all_results


@pytest.mark.parametrize("label", ["__bold__", "_em_", "www.evil.example", "1.", "-x", "--_a_--", "a...www.b"])
def test_valid_labels_that_look_like_markdown_render_as_text(tmp_path: Path, label: str) -> None:
    # labels pass the configuration's own check ([A-Za-z0-9._-]) and still reach every table and note
    row = result("7b", "gptq", "ml.g5.2xlarge", 5, 100.0, 30.0, label=label)
    failing = result("7b", "gptq", "ml.g5.2xlarge", 1, 0.0, 30.0, label=label)
    failing = failing.__class__(**{**failing.__dict__, "notes": (f"failed: {label} *boom* [x](y)",)})
    md = write_report([row, failing], tmp_path).markdown.read_text()
    out = gfm(md).replace(ZWSP, "")
    assert "<strong>" not in out and "<em>" not in out and "<a " not in out
    assert f"<td>7b/gptq/ml.g5.2xlarge/tgi-3.3.6/us-east-1/{html.escape(label)}</td>" in out
    assert f"failed: {html.escape(label)} *boom* [x](y)</li>" in out
