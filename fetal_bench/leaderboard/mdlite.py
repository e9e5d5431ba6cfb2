"""A deliberately small, safe Markdown renderer for dataset cards.

Cards are written by fetal-bench, but a synthetic dataset directory can come from anyone, so the
card is untrusted text. Full Markdown allows raw HTML; this subset does not: every character of
the source is escaped, and only these constructs become markup: ATX headings, paragraphs,
``-``/``*``/``1.`` lists, ``>`` quotes, fenced code blocks, pipe tables, and inline code,
``**bold**``, ``*emphasis*`` and ``[text](https://...)`` links (http/https only; anything else
stays text).
"""

from __future__ import annotations

import re

from fetal_bench.leaderboard.html import Markup, el, join, safe_external_url

_INLINE = re.compile(
    r"(?P<code>`[^`]+`)"
    r"|(?P<bold>\*\*(?=\S)(?:[^*]|\*(?!\*))+?\*\*)"
    r"|(?P<em>(?<![\w*])\*(?=\S)[^*]+?\*(?![\w*]))"
    r"|(?P<link>\[[^\]]+\]\([^)\s]+\))"
)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def inline(text: str) -> Markup:
    """Render inline Markdown in ``text``; everything that is not a recognised construct is escaped."""
    out: list[Markup | str] = []
    pos = 0
    for match in _INLINE.finditer(text):
        out.append(text[pos:match.start()])
        token = match.group(0)
        if match.group("code"):
            out.append(el("code", token[1:-1]))
        elif match.group("bold"):
            out.append(el("strong", inline(token[2:-2])))
        elif match.group("em"):
            out.append(el("em", inline(token[1:-1])))
        else:
            label, _, url = token[1:-1].partition("](")
            safe = safe_external_url(url)
            out.append(el("a", inline(label), href=safe, rel="nofollow noopener noreferrer") if safe else token)
        pos = match.end()
    out.append(text[pos:])
    return join(out)


def _split_row(line: str) -> list[str]:
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [cell.strip() for cell in line.split("|")]


def split_front_matter(text: str) -> tuple[str | None, str]:
    """Separate a card's YAML header (``---`` ... ``---``) from its Markdown body."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            after = text.find("\n", end + 4)
            return text[4:end], text[after + 1:] if after != -1 else ""
    return None, text


def render(text: str) -> Markup:
    """Render a Markdown body (the subset described in the module docstring) as safe HTML."""
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[Markup] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if line.lstrip().startswith("```"):
            fence_end = i + 1
            while fence_end < len(lines) and not lines[fence_end].lstrip().startswith("```"):
                fence_end += 1
            blocks.append(el("pre", el("code", "\n".join(lines[i + 1:fence_end]))))
            i = fence_end + 1
            continue
        heading = _HEADING.match(line)
        if heading:
            # Card headings start at h1; the page already has one, so they move down a level.
            level = min(len(heading.group(1)) + 1, 6)
            blocks.append(el(f"h{level}", inline(heading.group(2))))
            i += 1
            continue
        if line.lstrip().startswith(">"):
            quoted = []
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                quoted.append(lines[i].lstrip()[1:].lstrip())
                i += 1
            blocks.append(el("blockquote", render("\n".join(quoted))))
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]):
            header = _split_row(line)
            body = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                body.append(_split_row(lines[i]))
                i += 1
            blocks.append(el("div", el("table", el("thead", el("tr", [el("th", inline(c)) for c in header])),
                                       el("tbody", [el("tr", [el("td", inline(c)) for c in row]) for row in body])),
                             class_="table-wrap"))
            continue
        if _BULLET.match(line) or _NUMBERED.match(line):
            ordered = bool(_NUMBERED.match(line)) and not _BULLET.match(line)
            pattern = _NUMBERED if ordered else _BULLET
            items: list[str] = []
            while i < len(lines) and lines[i].strip():
                item = pattern.match(lines[i])
                if item:
                    items.append(item.group(1))
                elif items:  # a continuation line (e.g. an indented sub-item) joins the previous item
                    items[-1] += " " + lines[i].strip()
                i += 1
            blocks.append(el("ol" if ordered else "ul", [el("li", inline(item)) for item in items]))
            continue
        paragraph = []
        while i < len(lines) and lines[i].strip() and not (
                _HEADING.match(lines[i]) or lines[i].lstrip().startswith(("```", ">"))
                or _BULLET.match(lines[i])):
            paragraph.append(lines[i].strip())
            i += 1
        if not paragraph:  # a line no rule above consumed; never loop on it
            paragraph.append(lines[i].strip())
            i += 1
        blocks.append(el("p", inline(" ".join(paragraph))))
    return join(blocks, "\n")


__all__ = ["inline", "render", "split_front_matter"]
