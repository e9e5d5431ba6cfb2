"""The frame every leaderboard page shares, and its sortable tables.

A page is complete HTML without JavaScript: tables are rendered in rank order, and their sort
values go into a JSON block (``#leaderboard-data``) that ``assets/app.js`` reads to sort and filter, so
the script never parses numbers back out of the table text. Header cells hold plain text: the
script turns a sortable column's header into a button (and sets ``aria-sort``) only when it runs,
so a page without JavaScript shows no control that does nothing. Each page starts with a "Skip to
content" link to its ``<main>``. The Content-Security-Policy allows only the site's own
stylesheet, script and images, so even a mistake in escaping could not run inline code (which is
also why charts are inline SVG without style attributes).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fetal_bench import __version__
from fetal_bench.leaderboard.downloads import TableExport, to_csv, to_json
from fetal_bench.leaderboard.html import Markup, el, escape, join, json_for_script

CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'")
DATA_ELEMENT_ID = "leaderboard-data"
MAIN_ID = "content"  # the skip link's target


@dataclass(frozen=True)
class Context:
    """What every page of one build shares."""

    json_paths: dict[str, str]  # result file -> its copy in the site
    task_pages: dict[str, str]  # task name -> its page
    nav: tuple[tuple[str, str], ...]
    footer: Markup
    downloads: dict[str, bytes] = field(default_factory=dict)  # filled while pages render
    result_pages: dict[str, str] = field(default_factory=dict)  # result file -> its own page


@dataclass
class Page:
    """One page being rendered: its path (for relative links) and its tables' sort data."""

    path: str
    ctx: Context
    tables: dict[str, dict] = field(default_factory=dict)

    @property
    def root(self) -> str:
        return "../" * self.path.count("/")

    def link(self, target: str) -> str:
        return self.root + target


def frame(page: Page, title: str, body: Markup) -> str:
    nav_links = [el("a", label, href=page.link(target), aria_current="page" if target == page.path else None)
                 for label, target in page.ctx.nav]
    head = join([
        Markup('<meta charset="utf-8">'),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("meta", http_equiv="Content-Security-Policy", content=CSP),
        el("meta", name="generator", content=f"fetal-bench {__version__}"),
        el("title", title),
        el("link", rel="icon", href="data:,"),  # no favicon request (a 404 on a web server)
        el("link", rel="stylesheet", href=page.link("assets/style.css")),
        el("script", src=page.link("assets/app.js"), defer=True),
    ], "\n")
    header = el("header", el("div", [
        el("a", [el("span", "fetal-bench", class_="brand-name"), el("span", "leaderboard", class_="brand-sub")],
           href=page.link("index.html"), class_="brand"),
        el("nav", nav_links, aria_label="Site"),
    ], class_="wrap header-inner"), class_="site-header")
    data = el("script", json_for_script({"tables": page.tables}), type="application/json", id=DATA_ELEMENT_ID)
    # The first tab stop of every page; tabindex=-1 lets the link move the keyboard focus to <main>.
    skip = el("a", "Skip to content", href=f"#{MAIN_ID}", class_="skip-link")
    document = join([
        Markup("<!doctype html>"),
        Markup('<html lang="en">'),
        el("head", "\n", head, "\n"),
        el("body", skip, "\n", header, "\n", el("main", body, class_="wrap", id=MAIN_ID, tabindex="-1"), "\n",
           el("footer", el("div", page.ctx.footer, class_="wrap"), class_="site-footer"), "\n", data, "\n"),
        Markup("</html>"),
    ], "\n")
    return document + "\n"


def section(title: str, *content: Any, class_: str | None = None, id_: str | None = None,
             lead: Any = None) -> Markup:
    return el("section", el("h2", title), el("p", lead, class_="lead") if lead else None, *content,
              class_=class_, id=id_)


# --------------------------------------------------------------------------------------------
# Sortable tables


@dataclass(frozen=True)
class Column:
    """One table column: header, cell renderer, sort value and first-click direction.

    ``optional`` columns collapse (behind a "more columns" button) once the script runs, so
    the table fits the screen; without the script every column shows.
    """

    label: Any
    cell: Callable[[Any], Markup]  # row -> <td>
    sort: Callable[[Any], Any] | None  # row -> sort value (number, text or None); None: not sortable
    first: str = "asc"  # direction of the first click
    numeric: bool = False
    title: str | None = None
    optional: bool = False
    # The column's name in a page URL's sort parameter (e.g. "hd95_mm" in ?sort=main.hd95_mm.asc);
    # by default the header text, lower case, with dashes.
    key: str | None = None


def plain_text(content: Any) -> str:
    """The text of a header or cell (what a reader sees), tags dropped."""
    rendered = join([content])
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", rendered)).split())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-")


def _column_keys(columns: Sequence[Column]) -> list[str]:
    """Unique, URL-safe keys ([a-z0-9_-]) for the columns of one table."""
    keys: list[str] = []
    for index, column in enumerate(columns):
        base = _slug(column.key or plain_text(column.label)) or f"c{index}"
        key, n = base, 2
        while key in keys:
            key, n = f"{base}-{n}", n + 1
        keys.append(key)
    return keys


def _mark_optional(cell: Markup) -> Markup:
    # Cells come from el("td", ...), so they start with "<td"; the attribute is ours, not data.
    return Markup(cell.replace("<td", "<td data-opt", 1)) if cell.startswith("<td") else cell


def _label_cell(cell: Markup, label: str) -> Markup:
    """Give a cell its column's header text (escaped), which a stacked table shows before the value."""
    if not label or not cell.startswith("<td"):
        return cell
    return Markup(cell.replace("<td", f'<td data-label="{escape(label)}"', 1))


def _initially_sorted(column: Column, rows: Sequence[Any]) -> bool:
    """Whether the rows, as rendered, are in ascending order of this column (missing values last)."""
    if column.sort is None:
        return False
    values = [column.sort(row) for row in rows]
    present = [v for v in values if v is not None]
    if values[:len(present)] != present:
        return False
    try:
        return all(a <= b for a, b in zip(present, present[1:]))
    except TypeError:
        return False


def _download_links(page: Page, table_id: str, export: TableExport) -> Markup:
    """Write the table's CSV and JSON next to the page and link them."""
    stem = page.path[:-len(".html")] if page.path.endswith(".html") else page.path
    links = []
    for kind, render in (("csv", to_csv), ("json", to_json)):
        target = f"{stem}.{table_id}.{kind}"
        page.ctx.downloads[target] = render(export)
        name = target.rsplit("/", 1)[-1]
        # The files sit beside the page, so the link is just their name.
        links.append(el("a", kind.upper(), href=name, download=name, class_=f"dl dl-{kind}",
                        type="text/csv" if kind == "csv" else "application/json",
                        title=f"{export.title}: every row and column, full precision, as {kind.upper()}"))
    return el("span", ["Download ", join(links, " · ")], class_="downloads")


def table_tools(page: Page, table_id: str, columns: Sequence[Column], export: TableExport | None) -> Markup:
    n_optional = sum(1 for c in columns if c.optional)
    toggle = (el("button", f"Show {n_optional} more column{'s' if n_optional != 1 else ''}", type="button",
                 class_="more-columns", data_table=table_id, aria_expanded="false", hidden=True)
              if n_optional else None)
    downloads = _download_links(page, table_id, export) if export is not None else None
    if toggle is None and downloads is None:
        return Markup("")
    return el("div", [toggle, downloads], class_="table-tools")


def sortable_table(page: Page, table_id: str, columns: Sequence[Column], rows: Sequence[Any], *,
           caption: str, flagged: bool = False, row_class: Callable[[Any], str | None] = lambda r: None,
           row_attrs: Callable[[Any], dict[str, str]] = lambda r: {},
           export: TableExport | None = None, extra_class: str = "", stack: bool = False) -> Markup:
    """A table whose sort values go into the page's embedded JSON under ``table_id``.

    Headers are plain text; the script makes the sortable ones buttons. The rows' order as
    rendered is recorded as the first column's ascending sort when it is one (a ranking's rank).
    ``stack``: on narrow screens each row becomes a card, every cell after the first two
    (which say what the row is) labelled with its column's header.
    """
    head_cells = []
    meta_columns = []
    keys = _column_keys(columns)
    sorted_key = keys[0] if columns and _initially_sorted(columns[0], rows) else None
    for index, column in enumerate(columns):
        key = keys[index]
        sortable = column.sort is not None
        head_cells.append(el("th", column.label, scope="col", data_col=key if sortable else None,
                             class_="num" if column.numeric else None, title=column.title,
                             data_opt=column.optional))
        meta_columns.append({"key": key, "sortable": sortable, "first": column.first,
                             "type": "num" if column.numeric else "str"})
    labels = [plain_text(column.label) if stack and index >= 2 else "" for index, column in enumerate(columns)]
    body_rows = []
    sort_rows: dict[str, list] = {}
    for position, row in enumerate(rows):
        row_id = f"{table_id}-{position}"
        cells = []
        for column, label in zip(columns, labels):
            cell = _label_cell(column.cell(row), label)
            cells.append(_mark_optional(cell) if column.optional else cell)
        attrs = {f"data_{k}": v for k, v in row_attrs(row).items()}
        body_rows.append(el("tr", cells, data_row=row_id, class_=row_class(row), **attrs))
        sort_rows[row_id] = [column.sort(row) if column.sort else None for column in columns]
    page.tables[table_id] = {"columns": meta_columns, "rows": sort_rows, "sorted": sorted_key,
                             "order": [f"{table_id}-{p}" for p in range(len(rows))]}
    classes = " ".join(c for c in ("lb-table", "flagged" if flagged else "", "stack" if stack else "",
                                   extra_class) if c)
    table = el("table", el("caption", caption, class_="visually-hidden"),
               el("thead", el("tr", head_cells)), el("tbody", body_rows),
               class_=classes, id=table_id, data_sortable=True, data_filterable=True)
    return join([table_tools(page, table_id, columns, export), el("div", table, class_="table-wrap")])


__all__ = ["CSP", "Column", "Context", "DATA_ELEMENT_ID", "MAIN_ID", "Page", "frame", "plain_text", "section",
           "sortable_table", "table_tools"]
