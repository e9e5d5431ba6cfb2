"""The leaderboard: validate result files, rank the comparable ones, render a static site.

>>> from fetal_bench.leaderboard import build_site
>>> summary = build_site("leaderboard/results", "site")          # doctest: +SKIP
>>> summary.index                                                  # doctest: +SKIP
PosixPath('site/index.html')

``fetal-bench leaderboard build --results DIR --out SITE`` is a thin layer over :func:`build_site`.
The pieces are usable on their own: :func:`load_results` (validation, with reasons for each
rejected file), :func:`build_boards` (comparable groups and competition ranks),
:func:`load_references` (the papers' published numbers, shown as unranked reference rows) and
:func:`render_site` (the site's files, in memory, with a CSV and a JSON per table).
"""

from fetal_bench.leaderboard.loading import InvalidResult, LoadedResults, ResultEntry, load_results
from fetal_bench.leaderboard.ranking import (
    Board, Comparability, RankedRow, TaskBoards, TaskInfo, build_boards, build_task_boards, rank_entries,
)
from fetal_bench.leaderboard.references import Reference, load_references
from fetal_bench.leaderboard.site import SiteSummary, TaskSummary, build_site, render_site

__all__ = [
    "Board", "Comparability", "InvalidResult", "LoadedResults", "RankedRow", "Reference", "ResultEntry",
    "SiteSummary", "TaskBoards", "TaskInfo", "TaskSummary", "build_boards", "build_site", "build_task_boards",
    "load_references", "load_results", "rank_entries", "render_site",
]
