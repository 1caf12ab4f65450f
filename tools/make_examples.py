"""Rebuild the bundled sample media in examples/ from their public-domain / MIT sources.

    python tools/make_examples.py            # needs ../shared/data for the video clip
    python tools/make_examples.py --check    # also run face detection on every file

astronaut.png: scikit-image's `data.astronaut()` (NASA, public domain), re-encoded as PNG.
grace_hopper.jpg: matplotlib's sample file, copied byte for byte (US Navy, public domain).
clip.mp4: the first CLIP_SECONDS of LivePortrait's assets/examples/driving/d10.mp4 (MIT),
re-encoded: H.264 (libx264, one thread so the bytes repeat) and AAC 128 kb/s, 512x512 30 fps.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import av
import matplotlib.cbook
import numpy as np
import skimage.data

from slimswap.files import atomic_write
from slimswap.media import SWSCALE_FLAGS, probe_video, read_frames, read_image, write_image
from slimswap.paths import EXAMPLES_DIR, shared_data_dir

CLIP_SOURCE = "videos/liveportrait_driving_d10.mp4"
CLIP_SECONDS = 4
CLIP_ATTRIBUTION = "cut from KwaiVGI/LivePortrait assets/examples/driving/d10.mp4 (MIT licence)"
FADE_S = 0.02  # short audio fade-out so the cut does not click


def make_images(out_dir: Path) -> None:
    write_image(out_dir / "astronaut.png", skimage.data.astronaut())
    hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    shutil.copyfile(hopper, out_dir / "grace_hopper.jpg")


def _source_audio(src: av.container.InputContainer, start: int, stop: int) -> np.ndarray:
    """Decoded float samples (channels, n) covering sample times [start, stop) of the source."""
    chunks = []
    for frame in src.decode(audio=0):
        samples = frame.to_ndarray()  # fltp: (channels, n)
        first = int(frame.pts)  # the audio time base is 1/sample_rate
        lo, hi = max(start - first, 0), min(stop - first, samples.shape[1])
        if lo < hi:
            chunks.append(samples[:, lo:hi])
        if first + samples.shape[1] >= stop:
            break
    return np.concatenate(chunks, axis=1).astype(np.float32)


def make_clip(source: Path, out_path: Path) -> None:
    target = atomic_write(out_path)  # a killed run's temporary is removed by the next one
    tmp = target.path
    with av.open(str(source)) as src:
        vin, ain = src.streams.video[0], src.streams.audio[0]
        fps = Fraction(vin.average_rate)
        n_frames = int(CLIP_SECONDS * fps)
        rate = ain.codec_context.sample_rate
        audio = _source_audio(src, 0, CLIP_SECONDS * rate)
    fade = int(FADE_S * rate)
    audio[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)

    with av.open(str(tmp), "w", options={"movflags": "faststart"}) as out:
        out.metadata["comment"] = CLIP_ATTRIBUTION
        video = out.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "slow"})
        video.width, video.height, video.pix_fmt = vin.width, vin.height, "yuv420p"
        video.codec_context.time_base = 1 / fps
        video.thread_count = 1
        cc = video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        aout = out.add_stream("aac", rate=rate, layout="stereo")
        aout.bit_rate = 128_000

        done = 0
        for batch in read_frames(source, 30):
            for rgb in batch[: n_frames - done]:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                    format="yuv420p",
                    dst_colorspace="ITU709",
                    dst_color_range="MPEG",
                    interpolation=SWSCALE_FLAGS,
                )
                frame.pts, frame.time_base = done, 1 / fps
                out.mux(video.encode(frame))
                done += 1
            if done == n_frames:
                break
        out.mux(video.encode(None))

        step = 1024
        for i in range(0, audio.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, i : i + step]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, i, Fraction(1, rate)
            out.mux(aout.encode(frame))
        out.mux(aout.encode(None))
    target.commit()


def check(out_dir: Path) -> bool:
    """One face in each image and on (nearly) every clip frame, by the default analyser
    (MediaPipe). Detections are listed with their scores; faces scoring >= 0 are counted
    (for dlib's HOG, whose scores are margins, a threshold of -0.5 also fires on the mission
    patch of astronaut.png just below 0).
    """
    from slimswap.face.analyser import FaceAnalyser

    analyser = FaceAnalyser()
    ok = True
    for name in ("astronaut.png", "grace_hopper.jpg"):
        faces = analyser.detect(read_image(out_dir / name))
        confident = [f for f in faces if f.score >= 0.0]
        boxes = ", ".join(f"{f.bbox.astype(int).tolist()} score {f.score:.2f}" for f in faces)
        print(
            f"{name}: {len(faces)} face(s) at default min_score, {len(confident)} at >= 0: {boxes}"
        )
        ok &= len(confident) == 1
    counts = [
        len(analyser.detect_boxes(f)) for b in read_frames(out_dir / "clip.mp4", 30) for f in b
    ]
    hist = np.bincount(counts, minlength=2)
    print(f"clip.mp4: {len(counts)} frames, faces-per-frame histogram {hist.tolist()}")
    print(probe_video(out_dir / "clip.mp4"))
    return bool(ok and hist[1] >= 0.98 * len(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="run face detection on the results")
    args = parser.parse_args()
    EXAMPLES_DIR.mkdir(exist_ok=True)
    make_images(EXAMPLES_DIR)
    data = shared_data_dir()
    if data is None:
        sys.exit("../shared/data is missing: cannot cut clip.mp4 (the images were written)")
    make_clip(data / CLIP_SOURCE, EXAMPLES_DIR / "clip.mp4")
    if args.check and not check(EXAMPLES_DIR):
        sys.exit("face check failed")


if __name__ == "__main__":
    main()
