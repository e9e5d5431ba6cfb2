"""Rich consoles shared by the commands (stdout for results, stderr for errors), and the one
way to put an outside string on them.

Rich reads ``[...]`` in printed strings as markup: an id ``[/x]`` raises ``MarkupError`` and
``[link=file:///etc/passwd]`` prints a terminal hyperlink. Every string that comes from outside
(ids, names, paths, file contents, library messages that quote them) therefore goes through
:func:`safe` (or :func:`note`) before it is printed; literal markup is written only in the
command's own format strings.

When stdout is not a terminal (a pipe, a file, click's test runner) the consoles print plain
text at an unbounded width, so messages are never folded into a paragraph of fragments. The
listings (`tasks list`, `models list`, `datasets list`) are tables of prose: they go through
:func:`print_listing`, which keeps them within the terminal's width (piped: ``COLUMNS``, else 100)
and never splits a word.
"""

from __future__ import annotations

import os
from typing import Sequence

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

PIPE_WIDTH = 10_000  # "unbounded": tables are only as wide as their content
LISTING_PIPE_WIDTH = 100  # a piped listing without COLUMNS
MAX_SHOWN = 500  # characters of one outside string shown; the rest is cut (a 1 MB id is no help)

# C0 and C1 control characters (ESC starts terminal escape sequences) shown as \xNN, never sent
# to the terminal. Newline and tab stay: multi-line messages are ours.
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if chr(c) not in "\n\t"}
# Bidirectional controls (U+202E turns "evil\u202Egnp.exe" into "evilexe.png" on screen) and the
# Unicode line and paragraph separators: shown as \uNNNN, so what is printed reads as what it is.
_CONTROL.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                             0x2028, 0x2029]})


def safe(value: object, *, limit: int = MAX_SHOWN) -> str:
    """``value`` as text that rich prints literally: markup escaped, control characters made
    visible, cut to ``limit`` characters."""
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit} more characters)"
    return escape(text.translate(_CONTROL))


class _Console(Console):
    """A rich console that stops wrapping when its output is not a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(PIPE_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:  # keep rich's setter working
        Console.size.fset(self, new_size)


    def rule(self, title: str = "", **kwargs) -> None:
        """A rule across a terminal; a short plain heading elsewhere (not 10,000 characters)."""
        if self.is_terminal:
            super().rule(title, **kwargs)
        else:
            self.print(f"── {title} ──" if title else "──", highlight=False)


console = _Console()
err_console = _Console(stderr=True)


def note(message: object, *, style: str | None = None, to_stderr: bool = False) -> None:
    """Print a plain-text message (e.g. a library log line quoting paths or ids) literally."""
    target = err_console if to_stderr else console
    target.print(safe(message, limit=10 * MAX_SHOWN), style=style, highlight=False, soft_wrap=True)


def listing_width() -> int:
    """The width a listing fits: the terminal's; piped, ``COLUMNS`` when it is set, else 100."""
    if console.is_terminal:
        return console.width
    try:
        return max(40, int(os.environ.get("COLUMNS", "")))
    except ValueError:
        return LISTING_PIPE_WIDTH


def print_listing(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], footer: str = "") -> None:
    """A table of ``rows`` (cells already through :func:`safe`) within :func:`listing_width`,
    whose cells wrap between words only.

    Each column gets at least its longest word and at most its longest line; the room left is
    shared in proportion to what each column still wants. When even the longest words do not
    fit side by side, each row is printed as a small field/value table instead.
    """
    from rich.table import Table
    from rich.text import Text

    width = listing_width()
    cells = [list(headers)] + [[Text.from_markup(cell).plain for cell in row] for row in rows]
    columns = range(len(headers))
    least = [max(len(word) for row in cells for word in row[i].split() or [""]) for i in columns]
    most = [max(len(line) for row in cells for line in row[i].splitlines() or [""]) for i in columns]
    room = width - (len(headers) + 1) - 2 * len(headers)  # borders, one space of padding each side
    if sum(least) <= room:
        widths = _share(least, most, room)
        table = Table(title=title, show_lines=True)
        for header, column_width in zip(headers, widths):
            table.add_column(header, width=column_width, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table, width=width)
    else:
        _print_records(title, headers, rows, width)
    if footer:
        console.print(footer, width=width, highlight=False)


def _print_records(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console.print(Text(title, style="italic"))
    for row in rows:
        record = Table(show_header=False, box=box.SIMPLE, padding=(0, 1))
        record.add_column(no_wrap=True, style="bold")
        record.add_column(overflow="fold")
        for header, cell in zip(headers, row):
            record.add_row(escape(header), cell)
        console.print(record, width=width)


def _share(least: list[int], most: list[int], room: int) -> list[int]:
    """Column widths from ``least`` up to ``most`` summing to at most ``room`` (sum(least) <= room):
    the room beyond the least widths goes to each column in proportion to what it still wants."""
    wants = [max(0, high - low) for low, high in zip(least, most)]
    spare = room - sum(least)
    if spare >= sum(wants):
        return [max(low, high) for low, high in zip(least, most)]
    return [low + (spare * want) // sum(wants) for low, want in zip(least, wants)]
