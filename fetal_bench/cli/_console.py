"""Rich consoles shared by the commands (stdout for results, stderr for errors), and the one
way to put an outside string on them.

Rich reads ``[...]`` in printed strings as markup: an id ``[/x]`` raises ``MarkupError`` and
``[link=file:///etc/passwd]`` prints a terminal hyperlink. Every string that comes from outside
(ids, names, paths, file contents, library messages that quote them) therefore goes through
:func:`safe` (or :func:`note`) before it is printed; literal markup is written only in the
command's own format strings.

When stdout is not a terminal (a pipe, a file, click's test runner) the consoles print plain
text at an unbounded width, so `fetal-bench tasks list | cat` never folds a cell in the middle
of a word and ``grep``/``cut`` see one line per row.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

PIPE_WIDTH = 10_000  # "unbounded": tables are only as wide as their content
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
