"""Dataset cards as safe HTML, through markdown-it-py (CommonMark).

A synthetic dataset directory can come from anyone, so its card is untrusted text. The parser is
configured so that no input can produce markup we did not choose:

- raw HTML is off (``html=False``): ``<script>`` and friends come out as escaped text;
- a link is a link only when its target is an absolute http(s) URL
  (:func:`~fetal_bench.leaderboard.html.safe_external_url`); ``javascript:``, ``data:``, relative
  and ``mailto:`` targets stay plain text. Links get ``rel="nofollow noopener noreferrer"``;
- images are shown as links to the image, never loaded: the site's Content-Security-Policy allows
  only its own images (``img-src 'self' data:``), and fetching a remote image would tell its owner
  who opened the page;
- headings move down one level, because the page already has its ``<h1>``;
- GitHub-style pipe tables are on (our cards use them) and wrapped for horizontal scrolling;
  no inline ``style`` is emitted (the CSP forbids it).

Autolinks in angle brackets (``<https://...>``) are CommonMark and work; bare-URL "linkify" is
not enabled, even when linkify-it-py happens to be installed, so the same card gives the same page
on every machine.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

from fetal_bench.leaderboard.html import Markup, el, safe_external_url

# Bounds a card's size: markdown-it is fast, but a multi-megabyte README is not a card, and
# the page should stay readable. What is cut off is said at the end.
MAX_CARD_CHARS = 200_000
LINK_REL = "nofollow noopener noreferrer"


def _valid_link(url: str) -> bool:
    return safe_external_url(url) is not None


def _image_as_link(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    # markdown-it calls render rules as methods of its renderer. The alt text (the image's children) becomes the text of a link to the image.
    token = tokens[idx]
    alt = "".join(child.content for child in token.children or ()) or token.attrGet("src") or "image"
    return el("a", "Image: " + alt, href=token.attrGet("src"), rel=LINK_REL)


def _wrapped_table(wrapper_open: bool):
    def rule(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        return '<div class="table-wrap"><table>\n' if wrapper_open else "</table></div>\n"
    return rule


@functools.lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "xhtmlOut": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _valid_link  # applied to link, image and autolink targets alike
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("table_open", _wrapped_table(True))
    md.add_render_rule("table_close", _wrapped_table(False))
    return md


def _adjust(tokens: list[Token]) -> None:
    """Shift headings down a level, mark every link as external and drop inline styles, in place."""
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1]) + 1, 6)}"
        elif token.type in ("th_open", "td_open") and "style" in token.attrs:
            # Column alignment comes as a style attribute, which the CSP (style-src 'self') blocks;
            # right-aligned columns are numbers, which the stylesheet's class aligns instead.
            if token.attrs.pop("style") == "text-align:right":
                token.attrSet("class", "num")
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("rel", LINK_REL)


def render(text: str) -> Markup:
    """Render a card's Markdown body as HTML that is safe to insert into a page."""
    truncated = len(text) > MAX_CARD_CHARS
    md = _parser()
    tokens = md.parse(text[:MAX_CARD_CHARS] if truncated else text)
    _adjust(tokens)
    body = md.renderer.render(tokens, md.options, {})
    if truncated:
        body += el("p", f"(The card is longer than {MAX_CARD_CHARS:,} characters; the rest is not shown.)",
                   class_="muted")
    return Markup(body)


def split_front_matter(text: str) -> tuple[str | None, str]:
    """Separate a card's YAML header (``---`` ... ``---``) from its Markdown body."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            after = text.find("\n", end + 4)
            return text[4:end], text[after + 1:] if after != -1 else ""
    return None, text


__all__ = ["MAX_CARD_CHARS", "render", "split_front_matter"]
