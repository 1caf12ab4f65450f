"""Re-encode a shard's crops at another WebP quality (same faces, split and labels).

Used to fit a training shard plus checkpoints under the GPU machine's 64 MiB carry limit:
    python tools/reencode_shard.py IN.npz OUT.npz QUALITY
"""

import sys

import cv2
import numpy as np


def main(src: str, dst: str, quality: int) -> None:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    buf, offs = arrays["images"], arrays["offsets"]
    chunks, new_offs = [], [0]
    for i in range(len(offs) - 1):
        bgr = cv2.imdecode(buf[offs[i] : offs[i + 1]], cv2.IMREAD_COLOR)
        ok, enc = cv2.imencode(".webp", bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
        assert ok
        chunks.append(enc.ravel())
        new_offs.append(new_offs[-1] + len(enc))
    arrays["images"] = np.concatenate(chunks).astype(np.uint8)
    arrays["offsets"] = np.array(new_offs, dtype=arrays["offsets"].dtype)
    # source paths pair a face's 128 and 256 px crops; as bytes and deflated they cost ~0.3 MB
    arrays["sources"] = arrays["sources"].astype(np.bytes_)
    np.savez_compressed(dst, **arrays)
    print(dst, len(new_offs) - 1, "crops", arrays["images"].nbytes / 1e6, "MB of images")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
