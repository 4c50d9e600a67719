"""User-facing errors.

Anything a user can cause (a bad file, a bad flag, a missing model directory) raises a subclass of
`AiaynError` whose message names the file, line or field and says what to do. The CLI prints
the message on one line and exits non-zero; it never shows a traceback for these.
"""


class AiaynError(Exception):
    """Base class for errors caused by user input, reported without a traceback."""


class ConfigError(AiaynError):
    """A configuration file or field is invalid."""


class DataError(AiaynError):
    """An input data file is missing, malformed, or inconsistent."""
