"""Pack dlib chips + dlib's own descriptors of real faces, to check the port on a GPU machine.

The GPU machine has no dlib, so the reference is computed here and carried along:
    python tools/make_identity_check_set.py .carry/identity_check.npz
The output holds face data from ../shared: keep it out of git (.carry/ is ignored).
"""

import sys

import numpy as np

from slimswap.face.analyser import FaceAnalyser
from slimswap.media import read_image
from slimswap.paths import shared_data_dir


def main(out: str, n: int = 240) -> None:
    data = shared_data_dir()
    assert data is not None, "needs ../shared/data"
    paths = sorted((data / "deepface_testset").glob("id*/*.jpg"))[:60]
    paths += sorted((data / "lfw_deepfunneled").glob("*/*.jpg"))[::37]
    analyser = FaceAnalyser()
    chips, descs = [], []
    for p in paths:
        if len(chips) >= n:
            break
        img = read_image(p)
        faces = analyser.detect(img)
        if not faces:
            continue
        chip = analyser.chip(img, faces[0])
        chips.append(chip)
        descs.append(analyser.embed_chip(chip))
    np.savez_compressed(out, chips=np.stack(chips), descriptors=np.stack(descs))
    print(out, len(chips))


if __name__ == "__main__":
    main(sys.argv[1])
