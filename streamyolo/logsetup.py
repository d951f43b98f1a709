"""Where streamyolo's log goes: standard error, a line per message, passwords redacted —
the ``streamyolo`` command's, and its worker processes' (which log as it does)."""

from __future__ import annotations

import logging
import sys

from streamyolo.sources.redact import RedactingFilter

FORMAT = "streamyolo: %(levelname)s: %(message)s"


def log_to_stderr(level: int) -> None:
    """The root logger logs at ``level`` to standard error in :data:`FORMAT` (unless it has a
    handler already: :func:`logging.basicConfig`), and every handler of it redacts passwords."""
    logging.basicConfig(level=level, format=FORMAT, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(known, RedactingFilter) for known in handler.filters):
            handler.addFilter(RedactingFilter())
