"""Label outputs as synthetic, and read the labels back (`slimswap verify`).

Every output carries three labels: a C2PA manifest (credentials.py), a metadata label
(label.py) and two invisible watermarks (watermark.py: face_mark.py + frame_mark.py).
"""

from slimswap.provenance.credentials import C2paReport, OutputSigner, output_signer, read_c2pa
from slimswap.provenance.label import LABEL_KEY, label_metadata
from slimswap.provenance.verify import VerifyReport, verify_file
from slimswap.provenance.watermark import (
    WATERMARK_IDS,
    WatermarkReading,
    embed_watermark,
    read_watermark,
)

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
