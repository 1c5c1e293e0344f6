"""Errors of the converter, each naming the file, the problem and the fix."""

from cityseg.errors import CitysegError, EngineMismatch  # noqa: F401  (raised by engine_cache; exported here too)


class ExportError(CitysegError):
    """An export cannot be done: missing source model, existing artifact, unsupported graph..."""


class ParityError(ExportError):
    """The exported model does not reproduce its source; nothing was written."""

    def __init__(self, message: str, report):
        super().__init__(message)
        self.report = report
