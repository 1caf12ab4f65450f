"""The metadata label: tool, version and model, as PNG text chunks, EXIF JSON or MP4 tags.

Any tool can read it; any re-encode, screenshot or tag stripper loses it. That is why the
invisible watermark and the C2PA manifest travel with it.
"""

from __future__ import annotations

from slimswap import __version__
from slimswap.provenance.watermark import WATERMARK_IDS

LABEL_KEY = "slimswap:synthetic"


def label_metadata(model: str) -> dict[str, str]:
    """The metadata label: tool, version, model, and that a face was swapped by a machine."""
    return {
        "Software": f"slimswap {__version__}",
        LABEL_KEY: "true",
        "slimswap:notice": "face swapped by slimswap (synthetic media)",
        "slimswap:model": model,
        "slimswap:version": __version__,
        "slimswap:watermark": ",".join(WATERMARK_IDS),
    }
