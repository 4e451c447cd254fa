"""The one exception type that the CLI turns into a one-line error instead of a traceback."""


class LlmkitError(Exception):
    """Bad input from the user: a recipe key, a dataset column, a path, a log line.

    The message names the field and the file it came from, so one line is enough.
    """


def did_you_mean(name, choices, list_known: bool = False) -> str:
    """'; did you mean 'x'?' for the closest of `choices` to `name` ('' when none is close), then '; known: ...' if asked."""
    from difflib import get_close_matches

    hint = get_close_matches(str(name), list(choices), n=1)
    known = f"; known: {', '.join(sorted(choices))}" if list_known else ""
    return (f"; did you mean {hint[0]!r}?" if hint else "") + known


def choice(field: str, value, choices: dict, error: type[Exception] = LlmkitError):
    """`choices[value]`, or `error` naming the field, the closest choice and all of them."""
    if value not in choices:
        raise error(f"{field}: unknown value {value!r}{did_you_mean(value, choices)} (choices: {', '.join(choices)})")
    return choices[value]
