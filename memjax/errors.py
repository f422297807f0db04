"""The one exception type that the command line turns into a one-line message."""


class MemjaxError(Exception):
    """A user-facing error: bad input, a missing file, an unreadable checkpoint.

    The message names the file, row or parameter at fault and what was expected, so that the
    command line can print it alone, without a traceback.
    """
