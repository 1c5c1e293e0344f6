"""The one exception type users see: a message naming the thing, the problem and the fix."""

MAX_LISTED = 5
"""How many offending items an error message names before it says '... and N more'."""


def listing(items: list, what: str) -> str:
    """'<count> <what>:' then up to MAX_LISTED items, one per line: the body of an error message."""
    shown = "\n  ".join(str(i) for i in items[:MAX_LISTED])
    more = f"\n  ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"{len(items)} {what}:\n  {shown}{more}"


class CitysegError(Exception):
    """An error the user can act on. The CLI prints its message alone, without a traceback."""


class InputError(CitysegError):
    """A file or message given by the user is missing, unreadable or malformed."""


class BundleError(CitysegError):
    """A model bundle is missing a file, has an invalid card, or disagrees with its model."""


class BackendUnavailable(CitysegError):
    """An inference backend cannot run here (library, file or device missing)."""


class EngineMismatch(BundleError):
    """A TensorRT engine was built for another GPU, TensorRT version or ONNX, and rebuilding is off."""


class DeviceError(CitysegError):
    """The GPU runtime (CUDA, TensorRT) failed while running an engine."""
