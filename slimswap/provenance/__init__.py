"""Label outputs as synthetic, and read the labels back (`slimswap verify`).

Every output carries a metadata label (label.py) and an invisible watermark (frame_mark.py).
"""

from slimswap.provenance.frame_mark import (
    MAX_BIT_ERRORS,
    N_BITS,
    WatermarkReading,
    embed_watermark,
    read_watermark,
)
from slimswap.provenance.label import LABEL_KEY, label_metadata
from slimswap.provenance.verify import VerifyReport, verify_file

__all__ = [
    "LABEL_KEY",
    "MAX_BIT_ERRORS",
    "N_BITS",
    "VerifyReport",
    "WatermarkReading",
    "embed_watermark",
    "label_metadata",
    "read_watermark",
    "verify_file",
]
