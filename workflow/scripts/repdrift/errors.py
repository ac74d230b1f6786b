"""One exception type for every expected failure: bad config, missing or malformed data.

Rule scripts catch it and write its message as one line to the rule's log, instead of a traceback.
"""


class RepdriftError(Exception):
    """An expected failure whose message names the file or config key and what was expected."""


class DataError(RepdriftError):
    """Missing or malformed input data (a file, a column, a label, an image)."""


class ConfigError(RepdriftError):
    """A config value that cannot be used."""


class TrainingError(RepdriftError):
    """Training that cannot go on (a non-finite loss): the run, the epoch and step, and what to try."""
