"""A tiny HTML/SVG builder that escapes by default.

Every string that reaches a page comes from somewhere: a result file (anyone can open a pull
request with one), a dataset card, or our own code. Rather than remembering to escape at each
call site, the builder escapes *everything* it is given unless the value is already
:class:`Markup` (HTML that this module produced). Untrusted text therefore cannot become markup
by accident: the only way to emit raw HTML is to build it with :func:`el`.
"""

from __future__ import annotations

import functools
import html
import json
import re
from typing import Any, Iterable, Union
from urllib.parse import urlsplit

# Elements that have no closing tag in HTML.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
# Tag and attribute names only ever come from our code; a strict pattern catches typos and makes
# sure a bug could never let data pick a name.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9:-]*$")


class Markup(str):
    """A string of HTML that is safe to insert as is (produced by this module)."""

    __slots__ = ()

    def __html__(self) -> str:  # the convention markupsafe/Jinja use; harmless elsewhere
        return self


Child = Union[str, int, float, Markup, None, Iterable["Child"]]


def escape(value: Any) -> Markup:
    """Escape ``value`` for use as HTML text or a quoted attribute value."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(children: Iterable[Child], sep: str | Markup = "") -> Markup:
    """Concatenate children (escaping plain strings) into one :class:`Markup`."""
    sep_markup = escape(sep)
    return Markup(sep_markup.join(_render_child(child) for child in children))


def _render_child(child: Child) -> Markup:
    if child is None or child is False:
        return Markup("")
    if isinstance(child, Markup):
        return child
    if isinstance(child, (str, int, float)):
        return escape(child)
    return Markup("".join(_render_child(c) for c in child))


@functools.lru_cache(maxsize=1024)
def _attr_name(name: str) -> str:
    # Python keywords and hyphens: `class_` -> class, `data_sort` -> data-sort, `aria_sort` -> aria-sort.
    # Cached: names come only from our code, a few dozen of them, and a site calls this ~10^6 times.
    name = name.rstrip("_").replace("_", "-")
    if not _NAME.match(name):
        raise ValueError(f"invalid attribute name {name!r}")
    return name


@functools.lru_cache(maxsize=256)
def _checked_tag(tag: str) -> str:
    if not _NAME.match(tag):
        raise ValueError(f"invalid tag name {tag!r}")
    return tag


def el(tag: str, *children: Child, **attrs: Any) -> Markup:
    """Build one element: ``el("td", text, class_="num")``; text children and values are escaped.

    Attribute values: ``True`` gives a bare attribute, ``None``/``False`` leaves it out,
    anything else is converted to ``str`` and escaped.
    """
    parts = [_checked_tag(tag)]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = _attr_name(key)
        parts.append(name if value is True else f'{name}="{escape(value)}"')
    opening = "<" + " ".join(parts) + ">"
    if tag in _VOID:
        if children:
            raise ValueError(f"<{tag}> cannot have children")
        return Markup(opening)
    return Markup(opening + _render_child(children) + f"</{tag}>")


def safe_external_url(url: Any) -> str | None:
    """``url`` if it is an absolute http(s) URL, else None.

    A result file's ``submission.url`` becomes a link; without this check a ``javascript:`` URL
    would run code when clicked, which escaping alone does not prevent.
    """
    if not isinstance(url, str) or len(url) > 2048:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if any(ord(c) < 0x20 or c in "<>\"'`" for c in url):
        return None
    return url


def json_for_script(payload: Any) -> Markup:
    """Serialise ``payload`` for a ``<script type="application/json">`` block.

    The HTML parser ends a script element at the first ``</script`` whatever the type, and
    ``<!--`` switches it into an escaped state, so ``<``, ``>`` and ``&`` are written as JSON
    ``\\u`` escapes (valid JSON, identical after ``JSON.parse``); U+2028/2029 likewise, for older
    JavaScript parsers. Keys are sorted so the bytes are deterministic.
    """
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, replacement in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                              ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, replacement)
    return Markup(text)


__all__ = ["Markup", "el", "escape", "join", "json_for_script", "safe_external_url"]
