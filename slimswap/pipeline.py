"""Image and video swap jobs: the steps of DESIGN.md's flow, with batching and progress.

Everything here is orchestration; the work is done by face/ (analysis, alignment, masks,
paste-back), swap/ (the swappers) and media.py (reading and atomic writing). Inputs are
checked before any work starts, so a bad argument fails in a second with one clear line.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from slimswap import media
from slimswap.errors import UserError
from slimswap.face.align import align, transform_points
from slimswap.face.analyser import Face, FaceAnalyser, kps_from_landmarks
from slimswap.face.blend import color_transfer, paste_back
from slimswap.face.mask import (
    DEFAULT_REGIONS,
    REGIONS,
    area_mask,
    box_mask,
    combine_masks,
    region_mask,
)
from slimswap.face.select import DetectionSchedule, FaceTracker, box_from_landmarks, select_faces
from slimswap.provenance import embed_watermark, label_metadata
from slimswap.swap.base import SourceIdentity, Swapper

MASKS = ("box", "area", "region")
BLENDS = ("feather", "poisson")


@dataclass
class SwapOptions:
    face_selector: str = "one"  # one | many | reference
    reference: Path | None = None  # image of the person to replace (reference mode)
    masks: tuple[str, ...] = ("box", "area")
    regions: tuple[str, ...] = DEFAULT_REGIONS  # face regions swapped by the "region" mask
    detector: str = "mediapipe"  # face analysis: mediapipe | dlib
    blend: str = "feather"  # feather | poisson
    color_correction: bool = True
    upsample: int = 0  # detector upsampling: 1 finds faces down to ~40 px, 4x slower
    detect_every: int = 5  # video: full detection every k frames, landmarks on every frame
    batch_size: int = 16  # video frames per swapper call
    overwrite: bool = False
    progress: bool = True
    label: bool = True  # metadata label; the invisible watermark is always embedded

    def check(self) -> None:
        if self.face_selector not in ("one", "many", "reference"):
            raise UserError(f"--face-selector must be one, many or reference, got {self.face_selector!r}")
        if self.face_selector == "reference" and self.reference is None:
            raise UserError("--face-selector reference needs --reference IMAGE (a photo of the person to replace)")
        bad = [m for m in self.masks if m not in MASKS]
        if bad or not self.masks:
            raise UserError(f"--mask takes a comma list of {', '.join(MASKS)}, got {','.join(self.masks) or 'nothing'}")
        bad = [r for r in self.regions if r not in REGIONS]
        if bad or not self.regions:
            raise UserError(f"--mask-regions takes a comma list of {', '.join(REGIONS)}, got {','.join(self.regions) or 'nothing'}")
        if "region" in self.masks and self.detector == "dlib":
            raise UserError("--mask region needs the face mesh: use --detector mediapipe (dlib has 68 points only)")
        if self.blend not in BLENDS:
            raise UserError(f"--blend must be feather or poisson, got {self.blend!r}")
        if self.detect_every < 1:
            raise UserError("--detect-every must be at least 1")
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")


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
    """Accumulated wall time per pipeline stage, so reports show the bottleneck."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - t


def provenance_metadata(swapper: Swapper) -> dict[str, str]:
    """Metadata label written into every output: the face in it was swapped by a machine."""
    return label_metadata(swapper.name)


# ------------------------------------------------------------------ source identity

def load_source_identity(path: Path, analyser: FaceAnalyser, resolution: int) -> SourceIdentity:
    """The largest face of the source image, aligned, with landmarks and dlib descriptor."""
    image = media.read_image(path)
    faces = analyser.detect(image)
    if not faces:
        faces = analyser.detect(image, upsample=analyser.upsample + 1)
    if not faces:
        raise UserError(f"no face found in source image {path}; use a clear, frontal photo of one person")
    face = analyser.embed(image, select_faces(faces, "one")[0])
    crop, affine = align(image, face.kps, resolution)
    return SourceIdentity(
        embedding=face.embedding, crop=crop, landmarks=transform_points(face.landmarks, affine).astype(np.float32)
    )


def reference_embedding(path: Path, analyser: FaceAnalyser) -> np.ndarray:
    image = media.read_image(path)
    faces = analyser.detect(image) or analyser.detect(image, upsample=analyser.upsample + 1)
    if not faces:
        raise UserError(f"no face found in reference image {path}")
    return analyser.embed(image, select_faces(faces, "one")[0]).embedding


# ------------------------------------------------------------------ per-frame work

def face_mask(
    landmarks_in_crop: np.ndarray, size: int, masks: tuple[str, ...],
    mesh_in_crop: np.ndarray | None = None, regions: tuple[str, ...] = DEFAULT_REGIONS,
) -> np.ndarray:
    parts = []
    if "box" in masks:
        parts.append(box_mask(size))
    if "area" in masks:
        parts.append(area_mask(landmarks_in_crop, size))
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


def swap_faces_in_frames(
    frames: list[np.ndarray],
    faces_per_frame: list[list[Face]],
    swapper: Swapper,
    identity: SourceIdentity,
    options: SwapOptions,
    timer: StageTimer,
) -> list[np.ndarray]:
    """Align every selected face of a batch of frames, swap them in one call, paste back."""
    size = swapper.resolution
    jobs: list[_Job] = []
    with timer("align"):
        for i, faces in enumerate(faces_per_frame):
            for face in faces:
                crop, affine = align(frames[i], face.kps, size)
                mesh = None if face.mesh is None else transform_points(face.mesh[:, :2], affine).astype(np.float32)
                jobs.append(_Job(i, crop, affine, transform_points(face.landmarks, affine).astype(np.float32), mesh))
    if not jobs:
        return list(frames)
    with timer("swap"):
        swapped = swapper.swap(
            np.stack([j.crop for j in jobs]), identity, target_landmarks=np.stack([j.landmarks for j in jobs])
        )
    out = list(frames)
    with timer("paste"):
        for job, crop in zip(jobs, swapped):
            mask = face_mask(job.landmarks, size, options.masks, job.mesh, options.regions)
            if options.color_correction:
                crop = color_transfer(crop, job.crop, mask)
            out[job.frame_index] = paste_back(out[job.frame_index], crop, job.affine, mask, options.blend)
    return out


# ------------------------------------------------------------------ jobs

def _prepare(source: Path, target: Path, output: Path, options: SwapOptions) -> None:
    options.check()
    for p, what in ((source, "source"), (target, "target")):
        if not Path(p).is_file():
            raise UserError(f"{what} file not found: {p}")
    media.check_not_same(source, output)
    media.check_not_same(target, output)
    media.check_output_path(output, options.overwrite)
    if media.is_video(output) != media.is_video(target):
        raise UserError(f"output {output} must be the same kind (image or video) as the target {target}")


def swap_image(
    source: Path, target: Path, output: Path, swapper: Swapper, options: SwapOptions, analyser: FaceAnalyser | None = None
) -> SwapReport:
    """Swap the selected face(s) of one image; raises UserError when the target has no face."""
    start = time.perf_counter()
    _prepare(source, target, output, options)
    analyser = analyser or FaceAnalyser(upsample=options.upsample, detector=options.detector)
    timer = StageTimer()
    frame = media.read_image(target)
    identity = load_source_identity(source, analyser, swapper.resolution)
    with timer("detect"):
        faces = analyser.detect(frame)
    if not faces:
        raise UserError(f"no face found in target image {target}; try --upsample 1 for small faces")
    ref = reference_embedding(options.reference, analyser) if options.face_selector == "reference" else None
    chosen = select_faces(faces, options.face_selector, ref, embed=lambda f: analyser.embed(frame, f))
    if not chosen:
        raise UserError(f"no face in {target} matches the reference {options.reference} (distance >= 0.6)")
    (result,) = swap_faces_in_frames([frame], [chosen], swapper, identity, options, timer)
    with timer("watermark"):
        result = embed_watermark(result)
    with timer("encode"):
        media.write_image(output, result, metadata=provenance_metadata(swapper) if options.label else None)
    return SwapReport(
        output=output, kind="image", frames=1, frames_swapped=1, faces_swapped=len(chosen),
        seconds=time.perf_counter() - start, stage_seconds=dict(timer.seconds), swapper=swapper.name,
    )


class _VideoSelector:
    """Per-frame faces for a video: detection every k frames, landmarks in tracked boxes between.

    The choice of person is made on tracks, not frames: in "one" mode the largest face's track
    is followed until it is lost, so the swap does not jump between people.
    """

    def __init__(self, analyser: FaceAnalyser, options: SwapOptions, ref: np.ndarray | None) -> None:
        self.analyser = analyser
        self.options = options
        self.ref = ref
        self.tracker = FaceTracker()
        self.schedule = DetectionSchedule(options.detect_every)
        self.chosen_ids: set[int] = set()
        self.smoothed: dict[int, np.ndarray] = {}
        self.smoothed_mesh: dict[int, np.ndarray] = {}

    SMOOTH_MOTION = 0.05  # mean landmark motion (in eye distances) followed without damping
    SMOOTH_MIN = 0.35  # blend factor for a still face

    def faces(self, index: int, frame: np.ndarray, timer: StageTimer) -> list[Face]:
        if self.schedule.should_detect(index, self.tracker):
            with timer("detect"):
                boxes = self.analyser.detect_boxes(frame)
            with timer("landmarks"):
                faces = [self.analyser.face_from_box(frame, b, s) for b, s in boxes]
        else:
            faces = []
            with timer("landmarks"):
                for track, box in self.schedule.boxes_to_follow(self.tracker):
                    face = self.analyser.face_from_box(frame, box, track.face.score)
                    faces.append(replace(face, bbox=box_from_landmarks(face.landmarks)))
        tracks = self.tracker.update(faces)
        faces = [self._smooth(t.id, f) for t, f in zip(tracks, faces)]
        return self._select(frame, faces, tracks)

    def _smooth(self, track_id: int, face: Face) -> Face:
        """Damp landmark jitter on a still face, follow real motion at once.

        dlib's landmarks wobble by a pixel or two between frames even when the face does not
        move; every wobble moves the aligned crop and shows as flicker in the swap. The blend
        factor grows with the motion (relative to the eye distance), so a moving head is
        never dragged behind (a simplified one-euro filter, written by hand).
        """
        prev = self.smoothed.get(track_id)
        lm, mesh = face.landmarks, face.mesh
        if prev is not None:
            iod = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))) or 1.0
            motion = float(np.abs(lm - prev).mean()) / iod
            alpha = float(np.clip(motion / self.SMOOTH_MOTION, self.SMOOTH_MIN, 1.0))
            lm = (prev + alpha * (lm - prev)).astype(np.float32)
            prev_mesh = self.smoothed_mesh.get(track_id)
            if mesh is not None and prev_mesh is not None:
                mesh = (prev_mesh + alpha * (mesh - prev_mesh)).astype(np.float32)
        self.smoothed[track_id] = lm
        if mesh is not None:
            self.smoothed_mesh[track_id] = mesh
        return replace(face, landmarks=lm, kps=kps_from_landmarks(lm), mesh=mesh)

    def _select(self, frame: np.ndarray, faces: list[Face], tracks) -> list[Face]:
        mode = self.options.face_selector
        if mode == "many":
            return faces
        live = {t.id for t in tracks}
        if not (self.chosen_ids & live):
            self.chosen_ids = set()
            if faces:
                if mode == "one":
                    pick = select_faces(faces, "one")
                else:
                    for t, f in zip(tracks, faces):
                        if t.embedding is None:
                            t.embedding = self.analyser.embed(frame, f).embedding
                    with_emb = [f.with_embedding(t.embedding) for t, f in zip(tracks, faces)]
                    pick = select_faces(with_emb, "reference", self.ref)
                    pick = [faces[with_emb.index(p)] for p in pick] if pick else []
                self.chosen_ids = {t.id for t, f in zip(tracks, faces) if any(f is p for p in pick)}
        return [f for t, f in zip(tracks, faces) if t.id in self.chosen_ids]


def swap_video(
    source: Path, target: Path, output: Path, swapper: Swapper, options: SwapOptions, analyser: FaceAnalyser | None = None
) -> SwapReport:
    """Swap faces through a whole video; frames without a (selected) face pass unchanged."""
    start = time.perf_counter()
    _prepare(source, target, output, options)
    analyser = analyser or FaceAnalyser(upsample=options.upsample, detector=options.detector)
    info = media.probe_video(target)
    identity = load_source_identity(source, analyser, swapper.resolution)
    ref = reference_embedding(options.reference, analyser) if options.face_selector == "reference" else None
    selector = _VideoSelector(analyser, options, ref)
    timer = StageTimer()
    report = SwapReport(output=output, kind="video", swapper=swapper.name)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [
        TextColumn("[bold]swapping"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:.1f} fps"), TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not options.progress, transient=False) as bar, media.VideoWriter(
        output, info, target, metadata=provenance_metadata(swapper) if options.label else None
    ) as writer:
        task = bar.add_task("swap", total=info.frame_count or None, fps=0.0)
        frames_iter = media.read_frames(target, options.batch_size)
        while True:
            with timer("decode"):
                frames = next(frames_iter, None)
            if frames is None:
                break
            faces_per_frame = [selector.faces(report.frames + i, f, timer) for i, f in enumerate(frames)]
            out = swap_faces_in_frames(frames, faces_per_frame, swapper, identity, options, timer)
            with timer("watermark"):
                out = [embed_watermark(f) for f in out]
            with timer("encode"):
                writer.write(out)
            report.frames += len(frames)
            n_swapped = sum(1 for f in faces_per_frame if f)
            report.frames_swapped += n_swapped
            report.frames_without_face += len(frames) - n_swapped
            report.faces_swapped += sum(len(f) for f in faces_per_frame)
            bar.update(task, advance=len(frames), fps=report.frames / (time.perf_counter() - start))
    report.seconds = time.perf_counter() - start
    report.stage_seconds = dict(timer.seconds)
    return report


def swap_file(
    source: Path, target: Path, output: Path, swapper: Swapper, options: SwapOptions, analyser: FaceAnalyser | None = None
) -> SwapReport:
    """Image or video, by the target's extension."""
    job = swap_video if media.is_video(target) else swap_image
    return job(Path(source), Path(target), Path(output), swapper, options, analyser)
