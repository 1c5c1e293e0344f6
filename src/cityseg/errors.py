"""The one exception type users see: a message naming the thing, the problem and the fix."""


class CitysegError(Exception):
    """An error the user can act on. The CLI prints its message alone, without a traceback."""


class InputError(CitysegError):
    """A file or message given by the user is missing, unreadable or malformed."""


class BundleError(CitysegError):
    """A model bundle is missing a file, has an invalid card, or disagrees with its model."""


class BackendUnavailable(CitysegError):
    """An inference backend cannot run here (library, file or device missing)."""
