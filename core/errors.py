"""The one exception type a user should ever see: a single line that says what is wrong and what to do."""


class GistlabError(Exception):
    """A user-facing problem (bad input, missing model, offline hub id).

    The CLI prints it as one line and exits 2; the app shows it with ``st.error``. Anything else
    that escapes is a bug.
    """
