"""The ``bot`` command's exit statuses, one meaning each (a supervisor acts on them).

* 0 — done, or stopped cleanly by a signal;
* 1 — an unexpected failure (a bug: a traceback is printed);
* 2 — the request cannot be done as asked: a bad config key or flag, bad data, a store that
  cannot be opened, a run another daemon drives (one line naming the cause);
* 3 — a daemon stopped because its store failed under it: locked for longer than
  ``store.lock_timeout_s``, deleted or replaced, or its run's lease taken over. Nothing was
  written after the fault; restarting resumes the run from its last committed step;
* 130 — interrupted before it could start.
"""

import sys
import traceback

from bot.redact import scrub_text

EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_STORE_FAULT = 3
EXIT_INTERRUPTED = 130


def report(message: str) -> None:
    """One ``bot: ...`` line on stderr, with any secret scrubbed out: these lines bypass
    logging (and its redaction filter), yet often quote a URL or a driver's message."""
    print(f"bot: {scrub_text(message)}", file=sys.stderr)


def report_bug(exc: BaseException) -> None:
    """The traceback of an unexpected failure (a bug), scrubbed like the log."""
    text = "".join(traceback.format_exception(exc))
    print(scrub_text(text), file=sys.stderr, end="")
