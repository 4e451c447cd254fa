"""The one exception type that the CLI turns into a one-line error instead of a traceback."""


class LlmkitError(Exception):
    """Bad input from the user: a recipe key, a dataset column, a path, a log line.

    The message names the field and the file it came from, so one line is enough.
    """
