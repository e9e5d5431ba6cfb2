"""The frame every leaderboard page shares, and its sortable tables.

A page is complete HTML without JavaScript: tables are rendered in rank order, and their sort
values go into a JSON block (``#leaderboard-data``) that ``assets/app.js`` reads to sort and filter, so
the script never parses numbers back out of the table text. The Content-Security-Policy allows
only the site's own stylesheet, script and images, so even a mistake in escaping could not run
inline code (which is also why charts are inline SVG without style attributes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fetal_bench import __version__
from fetal_bench.leaderboard.downloads import TableExport, to_csv, to_json
from fetal_bench.leaderboard.html import Markup, el, join, json_for_script

CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'")
DATA_ELEMENT_ID = "leaderboard-data"


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
    document = join([
        Markup("<!doctype html>"),
        Markup('<html lang="en">'),
        el("head", "\n", head, "\n"),
        el("body", header, "\n", el("main", body, class_="wrap"), "\n",
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


def _mark_optional(cell: Markup) -> Markup:
    # Cells come from el("td", ...), so they start with "<td"; the attribute is ours, not data.
    return Markup(cell.replace("<td", "<td data-opt", 1)) if cell.startswith("<td") else cell


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
           export: TableExport | None = None, extra_class: str = "") -> Markup:
    """A table whose sort values go into the page's embedded JSON under ``table_id``."""
    head_cells = []
    meta_columns = []
    for index, column in enumerate(columns):
        key = f"c{index}"
        sortable = column.sort is not None
        content = (el("button", column.label, el("span", class_="arrow", aria_hidden="true"), type="button",
                      class_="sort") if sortable else column.label)
        head_cells.append(el("th", content, scope="col", data_col=key if sortable else None,
                             aria_sort="ascending" if index == 0 and sortable else None,
                             class_="num" if column.numeric else None, title=column.title,
                             data_opt=column.optional))
        meta_columns.append({"key": key, "sortable": sortable, "first": column.first,
                             "type": "num" if column.numeric else "str"})
    body_rows = []
    sort_rows: dict[str, list] = {}
    for position, row in enumerate(rows):
        row_id = f"{table_id}-{position}"
        cells = [_mark_optional(column.cell(row)) if column.optional else column.cell(row) for column in columns]
        attrs = {f"data_{k}": v for k, v in row_attrs(row).items()}
        body_rows.append(el("tr", cells, data_row=row_id, class_=row_class(row), **attrs))
        sort_rows[row_id] = [column.sort(row) if column.sort else None for column in columns]
    page.tables[table_id] = {"columns": meta_columns, "rows": sort_rows,
                             "order": [f"{table_id}-{p}" for p in range(len(rows))]}
    classes = " ".join(c for c in ("lb-table", "flagged" if flagged else "", extra_class) if c)
    table = el("table", el("caption", caption, class_="visually-hidden"),
               el("thead", el("tr", head_cells)), el("tbody", body_rows),
               class_=classes, id=table_id, data_sortable=True, data_filterable=True)
    return join([table_tools(page, table_id, columns, export), el("div", table, class_="table-wrap")])


__all__ = ["CSP", "Column", "Context", "DATA_ELEMENT_ID", "Page", "frame", "section", "sortable_table", "table_tools"]
