"""Label outputs as synthetic, and read the labels back (`slimswap verify`).

Every output carries three labels: a C2PA manifest (credentials.py), a metadata label
(label.py) and two invisible watermarks (watermark.py: face_mark.py + frame_mark.py).

The names are loaded on first use: marking a frame needs only numpy and OpenCV, while the
C2PA signer needs `cryptography` and `c2pa-python`, which a GPU machine that runs the frame
path (issue 21) may not have.
"""

from importlib import import_module
from typing import TYPE_CHECKING

_WHERE = {
    "C2paReport": "credentials",
    "OutputSigner": "credentials",
    "output_signer": "credentials",
    "read_c2pa": "credentials",
    "LABEL_KEY": "label",
    "label_metadata": "label",
    "VerifyReport": "verify",
    "verify_file": "verify",
    "WATERMARK_IDS": "watermark",
    "WatermarkReading": "watermark",
    "embed_watermark": "watermark",
    "read_watermark": "watermark",
}
__all__ = [
    "LABEL_KEY",
    "WATERMARK_IDS",
    "C2paReport",
    "OutputSigner",
    "VerifyReport",
    "WatermarkReading",
    "embed_watermark",
    "label_metadata",
    "output_signer",
    "read_c2pa",
    "read_watermark",
    "verify_file",
]

if TYPE_CHECKING:
    from slimswap.provenance.credentials import C2paReport, OutputSigner, output_signer, read_c2pa
    from slimswap.provenance.label import LABEL_KEY, label_metadata
    from slimswap.provenance.verify import VerifyReport, verify_file
    from slimswap.provenance.watermark import (
        WATERMARK_IDS,
        WatermarkReading,
        embed_watermark,
        read_watermark,
    )


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'slimswap.provenance' has no attribute {name!r}")
    value = getattr(import_module(f"slimswap.provenance.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
