"""Keep the absolute paths of someone's machine out of the site.

Build records and older result files hold paths as they were given on the machine that made
them (a synthetic set's ``lora_path``, a checkpoint folder, ``/home/<user>/...``). They mean
nothing to a reader, can name a person, and make the site differ between machines. The site
shows the last component instead (``…/lora-fu``), which still tells runs apart.
"""

from __future__ import annotations

import re
from typing import Any

# A whole value that is an absolute path: POSIX, home-relative, Windows drive or UNC, file URL.
_ABSOLUTE = re.compile(r"^(?:/[^/\s]|~[/\\]|[A-Za-z]:[\\/]|\\\\[^\\]|file://)")
# An absolute path inside free text, under a folder that only local paths start with.
_EMBEDDED = re.compile(r"(?<![\w.:/])(?:/(?:home|Users|root|tmp|mnt|media|data|scratch|work|var|opt|srv|private|"
                       r"run|nfs|gpfs|lustre)/[^\s'\"<>,;)]*|[A-Za-z]:\\[^\s'\"<>,;)]*)")


def _last_part(path: str) -> str:
    parts = [p for p in re.split(r"[\\/]+", path.rstrip("/\\")) if p]
    return "…/" + (parts[-1] if parts else "")


def redact_text(text: str) -> str:
    """``text`` with absolute local paths cut to their last component."""
    if _ABSOLUTE.match(text) and not any(c.isspace() for c in text.strip()):
        return _last_part(text.strip())
    return _EMBEDDED.sub(lambda m: _last_part(m.group(0)), text)


def redact(value: Any) -> Any:
    """A copy of a JSON-like value with every string passed through :func:`redact_text`."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


__all__ = ["redact", "redact_text"]
