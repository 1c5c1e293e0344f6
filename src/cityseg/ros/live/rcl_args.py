"""What rcl says when it cannot parse the node's ROS arguments, as one line naming the argument and the fix."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile


@contextlib.contextmanager
def stderr_without(dropped: str):
    """Capture what rcl's C code writes to stderr meanwhile; pass it on without lines holding ``dropped``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode(errors="replace").splitlines(keepends=True)
                    if dropped not in line]
            sys.stderr.write("".join(kept))


def ros_arguments_problem(rcl_message: str) -> str:
    """rcl's 'failed to initialize rcl: Couldn't parse ...' as one line naming the argument and the fix."""
    detail = re.sub(r"^failed to initialize rcl: ", "", rcl_message).split(", at /")[0]
    detail = re.sub(r"\. Error: (error not set|Error parsing a event near line \d+)$", "", detail)
    if re.search(r"'-p model:='", detail):
        return "model is required: pass the bundle directory, e.g. -p model:=/models/unet_lite"
    if "params file" in detail:
        return f"{detail}: it is not a readable UTF-8 YAML params file; fix or re-save it as UTF-8"
    return f"{detail}; give each override as -p name:=value (quote an empty string: -p name:=\"''\")"
