"""Swapping faces in frames, images and videos: DESIGN.md's flow, with batching and progress.

`swap_frames` is the core and is pure: frames, the faces to swap in each, a swapper and the
source identity in; new frames out (align, one batched swap call, mask, colour, paste-back).
The CLI, the web UI, batch jobs, the evaluations and the benchmark all call it, directly or
through `swap_image` / `swap_video`, which add reading, face finding (face/track.py for
videos), the provenance mark and atomic writing, and report progress through a callback.
Inputs are checked before any work starts, so a bad argument fails in a second with one line.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.face.align import align, transform_points
from slimswap.face.analyser import Face, FaceAnalyser
from slimswap.face.blend import correct_colour, paste_back
from slimswap.face.mask import (
    DEFAULT_REGIONS,
    area_mask,
    box_mask,
    combine_masks,
    region_mask,
    skin_mask,
)
from slimswap.face.select import select_faces
from slimswap.face.track import Timer, VideoFaces, no_timer
from slimswap.face.warp import opening_mask
from slimswap.options import PasteOptions, Picture, SwapOptions
from slimswap.provenance import WATERMARK_IDS, embed_watermark, label_metadata
from slimswap.swap.base import SourceIdentity, Swapper

if TYPE_CHECKING:
    from slimswap.provenance import OutputSigner

# on_progress(done, total): frames swapped so far and the frame count (0 if unknown)
Progress = Callable[[int, int], None]


@dataclass
class SwapReport:
    output: Path
    kind: str  # image | video
    frames: int = 0
    frames_swapped: int = 0
    frames_without_face: int = 0
    faces_swapped: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    swapper: str = ""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class StageTimer:
    """Accumulated wall time per pipeline stage, so reports show the bottleneck.

    sync: called before a stage's clock stops (`torch.cuda.synchronize` on the GPU frame
    path, whose kernels run asynchronously: without it a stage's time lands in the next).
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.sync = sync

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.seconds[stage] += time.perf_counter() - t


# ------------------------------------------------------------------ the core


def face_mask(
    landmarks_in_crop: np.ndarray,
    size: int,
    masks: Sequence[str],
    mesh_in_crop: np.ndarray | None = None,
    regions: Sequence[str] = DEFAULT_REGIONS,
    area: np.ndarray | None = None,
) -> np.ndarray:
    """The paste mask of one crop: the chosen masks combined (box, area, mesh regions).
    area: `area_mask(landmarks_in_crop, size)` when the caller has it already."""
    parts = []
    if "box" in masks:
        parts.append(box_mask(size))
    if "area" in masks:
        parts.append(area_mask(landmarks_in_crop, size) if area is None else area)
    if "region" in masks:
        if mesh_in_crop is None:
            raise UserError("--mask region needs the face mesh: use --detector mediapipe")
        parts.append(region_mask(mesh_in_crop, size, regions))
    return combine_masks(*parts)


@dataclass
class _Job:
    """One face of one frame, between alignment and paste-back."""

    frame_index: int
    crop: np.ndarray
    affine: np.ndarray
    landmarks: np.ndarray  # in crop coordinates
    mesh: np.ndarray | None = None  # MediaPipe's 468 points in crop coordinates (region masks)


def swap_frames(
    frames: Sequence[np.ndarray],
    faces: Sequence[Sequence[Face]],
    swapper: Swapper,
    identity: SourceIdentity,
    paste: PasteOptions | None = None,
    timer: Timer = no_timer,
) -> list[np.ndarray]:
    """New frames with every given face swapped to `identity`; the inputs are not modified.

    faces[i] are the faces to replace in frames[i]. All faces of all frames are aligned and
    swapped in one swapper call (a GPU sees a batch), then masked, colour-matched and pasted
    back, once, here: the mask is the paste options' (box, area), narrowed by the swapper's
    own `blend_masks(landmarks, size)` where it has one (the classic warp). Frames without
    faces come back as they are. The two halves are `swap_crops` and `paste_crops` (the live
    loop runs them on two threads, one frame apart).
    """
    jobs, swapped = swap_crops(frames, faces, swapper, identity, timer)
    return paste_crops(frames, jobs, swapped, swapper, paste, timer)


def swap_crops(
    frames: Sequence[np.ndarray],
    faces: Sequence[Sequence[Face]],
    swapper: Swapper,
    identity: SourceIdentity,
    timer: Timer = no_timer,
) -> tuple[list[_Job], np.ndarray | None]:
    """Every given face aligned and swapped (one swapper call): the jobs and their swaps."""
    size = swapper.resolution
    jobs: list[_Job] = []
    with timer("align"):
        for i, frame_faces in enumerate(faces):
            for face in frame_faces:
                crop, affine = align(frames[i], face.kps, size)
                lm = transform_points(face.landmarks, affine).astype(np.float32)
                mesh = None
                if face.mesh is not None:
                    mesh = transform_points(face.mesh[:, :2], affine).astype(np.float32)
                jobs.append(_Job(i, crop, affine, lm, mesh))
    if not jobs:
        return jobs, None
    with timer("swap"):
        swapped = swapper.swap(
            np.stack([j.crop for j in jobs]),
            identity,
            target_landmarks=np.stack([j.landmarks for j in jobs]),
        )
    return jobs, swapped


def paste_crops(
    frames: Sequence[np.ndarray],
    jobs: Sequence[_Job],
    swapped: np.ndarray | None,
    swapper: Swapper,
    paste: PasteOptions | None = None,
    timer: Timer = no_timer,
) -> list[np.ndarray]:
    """The frames with `swap_crops`'s swaps masked, colour-matched and pasted back."""
    paste = paste or PasteOptions()
    out = list(frames)
    if not jobs:
        return out
    size = swapper.resolution
    with timer("paste"):
        own = getattr(swapper, "blend_masks", None)  # a swapper may narrow the mask
        narrow = own(np.stack([j.landmarks for j in jobs]), size) if own is not None else None
        openings = bool(getattr(swapper, "openings", False))
        for k, (job, crop) in enumerate(zip(jobs, swapped)):
            area = area_mask(job.landmarks, size)  # the paste mask's and the skin's
            mask = face_mask(job.landmarks, size, paste.masks, job.mesh, paste.regions, area)
            if narrow is not None:
                mask = combine_masks(mask, narrow[k])
            skin = skin_mask(job.landmarks, size, area=area)
            if paste.color_correction:
                crop = correct_colour(crop, job.crop, mask, skin)
            detail = skin if paste.detail else None
            # the target's own mouth and eyes: all of its own detail is right there
            own = opening_mask(job.landmarks, size) if paste.detail and openings else None
            out[job.frame_index] = paste_back(
                out[job.frame_index], crop, job.affine, mask, paste.blend, detail, own
            )
    return out


# ------------------------------------------------------------------ who is swapped in


def _read(picture: Picture) -> np.ndarray:
    return media.read_image(picture) if isinstance(picture, (str, Path)) else np.asarray(picture)


def _name(picture: Picture) -> str:
    return str(picture) if isinstance(picture, (str, Path)) else "the given image"


def _largest_face(image: np.ndarray, analyser: FaceAnalyser) -> Face | None:
    """The largest face, looking again with more upsampling if none is found."""
    faces = analyser.detect(image) or analyser.detect(image, upsample=analyser.upsample + 1)
    return analyser.embed(image, select_faces(faces, "one")[0]) if faces else None


def load_source_identity(
    source: Picture, analyser: FaceAnalyser, resolution: int
) -> SourceIdentity:
    """The largest face of the source image, aligned, with landmarks and dlib descriptor."""
    image = _read(source)
    face = _largest_face(image, analyser)
    if face is None:
        raise UserError(
            f"no face found in source image {_name(source)}; use a clear, frontal photo of one person"
        )
    return identity_from_face(image, face, resolution)


def identity_from_face(image: np.ndarray, face: Face, resolution: int) -> SourceIdentity:
    """A source identity from an analysed (embedded) face of an image already in memory."""
    crop, affine = align(image, face.kps, resolution)
    landmarks = transform_points(face.landmarks, affine).astype(np.float32)
    return SourceIdentity(embedding=face.embedding, crop=crop, landmarks=landmarks)


def reference_embedding(reference: Picture, analyser: FaceAnalyser) -> np.ndarray:
    face = _largest_face(_read(reference), analyser)
    if face is None:
        raise UserError(f"no face found in reference image {_name(reference)}")
    return face.embedding


def provenance_signer(output: Path, swapper: Swapper, options: SwapOptions) -> OutputSigner | None:
    """The C2PA signer of one output (loads the credentials now, before any work). Imported
    here: the signer needs `cryptography` and `c2pa-python`, which the rest of the frame path
    does not (a GPU machine runs it without them)."""
    from slimswap.provenance import output_signer

    return output_signer(output, swapper.name, options.c2pa_cert, options.c2pa_key, WATERMARK_IDS)


def provenance_metadata(swapper: Swapper) -> dict[str, str]:
    """Metadata label written into every output: the face in it was swapped by a machine."""
    return label_metadata(swapper.name)


# ------------------------------------------------------------------ jobs


def _prepare(
    source: Picture, target: Picture, output: Path, swapper: Swapper, options: SwapOptions
) -> tuple[Path, OutputSigner | None]:
    """Check everything a job needs before it starts (the signing credentials too, so a bad
    key fails now, not after the work); returns the output path and its C2PA signer."""
    options.check()
    for p, what in ((source, "source"), (target, "target"), (options.reference, "reference")):
        if isinstance(p, (str, Path)):
            if not Path(p).is_file():
                raise UserError(f"{what} file not found: {p}")
            media.check_not_same(p, output)
    media.check_output_path(output, options.overwrite)
    target_is_video = isinstance(target, (str, Path)) and media.is_video(target)
    if media.is_video(output) != target_is_video:
        raise UserError(
            f"output {output} must be the same kind (image or video) as the target {_name(target)}"
        )
    return Path(output), provenance_signer(Path(output), swapper, options)


def _who(
    source: Picture, swapper: Swapper, options: SwapOptions, analyser: FaceAnalyser | None
) -> tuple[FaceAnalyser, SourceIdentity, np.ndarray | None]:
    """The analyser to use, the source identity, and the reference person's descriptor."""
    analyser = analyser or FaceAnalyser(upsample=options.upsample, detector=options.detector)
    identity = load_source_identity(source, analyser, swapper.resolution)
    by_reference = options.face_selector == "reference"
    ref = reference_embedding(options.reference, analyser) if by_reference else None
    return analyser, identity, ref


def swap_image(
    source: Picture,
    target: Picture,
    output: Path,
    swapper: Swapper,
    options: SwapOptions,
    analyser: FaceAnalyser | None = None,
    on_progress: Progress | None = None,
) -> SwapReport:
    """Swap the selected face(s) of one image; raises UserError when the target has no face."""
    start, timer = time.perf_counter(), StageTimer()
    output, signer = _prepare(source, target, output, swapper, options)
    frame = _read(target)
    analyser, identity, ref = _who(source, swapper, options, analyser)
    with timer("detect"):
        faces = analyser.detect_image(frame)
    if not faces:
        raise UserError(
            f"no face found in target image {_name(target)}; try --upsample 1 for small faces"
        )
    chosen = select_faces(
        faces, options.face_selector, ref, embed=lambda f: analyser.embed(frame, f)
    )
    if not chosen:
        raise UserError(
            f"no face in {_name(target)} matches the reference {_name(options.reference)} "
            "(distance >= 0.6)"
        )
    (result,) = swap_frames([frame], [chosen], swapper, identity, options, timer)
    with timer("watermark"):
        result = embed_watermark(result, [f.kps for f in chosen])
    with timer("encode"):
        metadata = provenance_metadata(swapper) if options.label else None
        media.write_image(
            output, result, metadata=metadata, sign=signer.sign_bytes if signer else None
        )
    if on_progress is not None:
        on_progress(1, 1)
    return SwapReport(
        output=output,
        kind="image",
        frames=1,
        frames_swapped=1,
        faces_swapped=len(chosen),
        seconds=time.perf_counter() - start,
        stage_seconds=dict(timer.seconds),
        swapper=swapper.name,
    )


def swapped_batches(
    batches: Iterator[list[np.ndarray]],
    faces_in: VideoFaces,
    swapper: Swapper,
    identity: SourceIdentity,
    paste: PasteOptions,
    timer: Timer = no_timer,
) -> Iterator[tuple[list[np.ndarray], list[list[Face]]]]:
    """(swapped and watermarked frames, faces swapped in each) per batch of video frames.

    Two threads, one batch apart: while a worker pastes and marks batch n (OpenCV and numpy,
    which let go of the GIL), this thread finds the faces of batch n+1 and runs the model on
    them, and the caller encodes in between; the results are the same frames in the same
    order as one thread would make (on two cores: 13.1 -> 15.1 fps for lite on a 512 px clip).
    """

    def finish(frames, faces, jobs, swapped) -> tuple[list[np.ndarray], list[list[Face]]]:
        out = paste_crops(frames, jobs, swapped, swapper, paste, timer)
        with timer("watermark"):
            out = [embed_watermark(f, [x.kps for x in fs]) for f, fs in zip(out, faces)]
        return out, faces

    index = 0
    with ThreadPoolExecutor(1, thread_name_prefix="paste") as back:
        pending = None
        while True:
            with timer("decode"):
                frames = next(batches, None)
            if frames is None:
                break
            faces = [faces_in(index + i, f, timer) for i, f in enumerate(frames)]
            index += len(frames)
            jobs, swapped = swap_crops(frames, faces, swapper, identity, timer)
            if pending is not None:
                yield pending.result()
            pending = back.submit(finish, frames, faces, jobs, swapped)
        if pending is not None:
            yield pending.result()


def swap_video(
    source: Picture,
    target: Path,
    output: Path,
    swapper: Swapper,
    options: SwapOptions,
    analyser: FaceAnalyser | None = None,
    on_progress: Progress | None = None,
) -> SwapReport:
    """Swap faces through a whole video; frames without a (selected) face pass unchanged.

    A torch model on a CUDA GPU runs the device frame path (`frame_engine`: frames stay on
    the GPU from upload to paste-back) where the options allow it; everything else runs here.
    """
    from slimswap import frame_engine

    if frame_engine.applies(swapper, options):
        return frame_engine.swap_video_file(source, target, output, swapper, options, on_progress)
    start, timer = time.perf_counter(), StageTimer()
    output, signer = _prepare(source, target, output, swapper, options)
    info = media.probe_video(target)
    analyser, identity, ref = _who(source, swapper, options, analyser)
    faces_in = VideoFaces(analyser, options.face_selector, ref, options.detect_every)
    report = SwapReport(output=output, kind="video", swapper=swapper.name)
    metadata = provenance_metadata(swapper) if options.label else None
    batches = media.read_frames(target, options.batch_size)
    sign = signer.sign_file if signer else None
    with media.VideoWriter(output, info, target, metadata=metadata, sign=sign) as writer:
        for out, faces in swapped_batches(batches, faces_in, swapper, identity, options, timer):
            with timer("encode"):
                writer.write(out)
            report.frames += len(out)
            n_swapped = sum(1 for f in faces if f)
            report.frames_swapped += n_swapped
            report.frames_without_face += len(out) - n_swapped
            report.faces_swapped += sum(len(f) for f in faces)
            if on_progress is not None:
                on_progress(report.frames, info.frame_count)
    report.seconds = time.perf_counter() - start
    report.stage_seconds = dict(timer.seconds)
    return report


def swap_file(
    source: Picture,
    target: Path,
    output: Path,
    swapper: Swapper,
    options: SwapOptions,
    analyser: FaceAnalyser | None = None,
    on_progress: Progress | None = None,
) -> SwapReport:
    """Image or video, by the target's extension."""
    job = swap_video if media.is_video(target) else swap_image
    return job(source, Path(target), Path(output), swapper, options, analyser, on_progress)
