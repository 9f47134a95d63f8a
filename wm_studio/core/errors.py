"""Errors whose message is meant for the user: the command line and the studio show them without a traceback."""


class WmStudioError(Exception):
    """Base class: the message alone must tell the user what went wrong and what to do."""


class CheckpointError(WmStudioError):
    """A checkpoint or data file is missing, corrupt, or does not match what the code expects."""


class MissingDependencyError(WmStudioError):
    """An optional package (a game, CuPy, Dask) is not installed; the message names the install command."""


class ConfigError(WmStudioError):
    """A setting is out of range or inconsistent."""
