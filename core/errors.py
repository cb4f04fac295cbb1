"""The one exception type a user should ever see: a single line that says what is wrong and what to do."""


class GistlabError(Exception):
    """A user-facing problem (bad input, missing model, offline hub id).

    The CLI prints it as one line and exits 2; the app shows it with ``st.error``. Anything else
    that escapes is a bug.
    """


def first_line(exc: BaseException, limit: int = 160) -> str:
    """An exception as one short line for a GistlabError: its message's first line, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


class GistlabWarning(UserWarning):
    """Something the user should know that does not stop the work (a rebuilt cache, a run that
    learns nothing); the CLI prints it as one line, ``gistlab: warning: ...``."""
