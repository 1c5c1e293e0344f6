"""The DDS settings large images need: which Fast DDS profile the node gets, and advice when none.

With Fast DDS' defaults, images of more than a few hundred kB are lost between processes (see
"Large images" in docs/ROS.md). ``segmentation.launch.py`` gives the node the profile shipped in
``share/cityseg/config`` through the environment variables Fast DDS reads; the node itself warns
at startup when it runs on Fast DDS without any profile. No ROS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cityseg.config import ConfigError

PROFILE_FILE = "fastdds_large_images.xml"
"""The shipped Fast DDS profile, in config/ (installed to share/cityseg/config/)."""
PROFILE_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
"""Fast DDS 2.x (Humble, Jazzy) reads the first, Fast DDS 3 (Kilted and later) the second."""
DOCS = "see 'Large images' in docs/ROS.md"


def profile_environment(choice: str, default_profile: str | os.PathLike,
                        environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Environment variables that give the node the Fast DDS profile the ``dds_profile`` argument asks for.

    ``choice``: '' (default): the shipped profile, unless the environment already names one (the
    user's own profile is never replaced); 'none': the middleware's defaults; else a file path.
    """
    if choice.strip().lower() == "none":
        return {}
    if not choice.strip():
        if any(environ.get(name) for name in PROFILE_VARIABLES):
            return {}
        choice = str(default_profile)
    path = Path(choice).expanduser()
    if not path.is_file():
        raise ConfigError(f"dds_profile: {path} does not exist; pass an existing Fast DDS XML profile, "
                          f"dds_profile:=none for the middleware's defaults, or leave it empty for the "
                          f"installed {PROFILE_FILE}")
    return dict.fromkeys(PROFILE_VARIABLES, str(path.resolve()))


def middleware_advice(rmw: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """A warning when the middleware is left at settings that lose large images, else None."""
    if rmw.startswith("rmw_fastrtps"):
        configured = any(environ.get(name) for name in PROFILE_VARIABLES)
        if configured or environ.get("FASTDDS_BUILTIN_TRANSPORTS", "").upper().startswith("LARGE_DATA"):
            return None
        return (f"Fast DDS runs without a profile ({' / '.join(PROFILE_VARIABLES)} unset): images over "
                f"~0.5 MB may be lost between processes. Start the node with segmentation.launch.py (it "
                f"applies share/cityseg/config/{PROFILE_FILE}) or export the variable for the camera "
                f"driver and this node; {DOCS}")
    if rmw.startswith("rmw_cyclonedds") and not environ.get("CYCLONEDDS_URI"):
        return ("Cyclone DDS runs with its default socket buffers (CYCLONEDDS_URI unset): large images "
                f"may be lost; {DOCS}")
    return None
