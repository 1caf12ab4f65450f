"""`slimswap verify`: read every label back from an image or video.

Three labels, read independently: the C2PA manifest (validated by c2pa-python), the
metadata label and the invisible watermark. A file is labelled when any one is found: a
valid C2PA manifest that declares machine-made content, the metadata label, or the mark
(for videos: in at least half of the sampled frames that could be read, or the frame mark
over all of them together, see frame_mark.accumulate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slimswap import media
from slimswap.face.analyser import FaceAnalyser
from slimswap.provenance import face_mark, frame_mark
from slimswap.provenance.credentials import C2paReport, read_c2pa
from slimswap.provenance.label import LABEL_KEY
from slimswap.provenance.watermark import WatermarkReading, read_watermark


@dataclass
class VerifyReport:
    path: Path
    kind: str  # image | video
    label: dict[str, str] = field(default_factory=dict)  # the slimswap metadata found
    c2pa: C2paReport = field(default_factory=C2paReport)
    readings: list[WatermarkReading] = field(default_factory=list)  # one per checked frame

    @property
    def frames_checked(self) -> int:
        return len(self.readings)

    @property
    def frames_unreadable(self) -> int:
        """Frames too small for the frame mark and without a face to read."""
        return sum(not r.readable for r in self.readings)

    @property
    def frames_marked(self) -> int:
        return sum(r.detected for r in self.readings)

    @property
    def bit_errors(self) -> list[int]:
        """Per readable frame, the fewest bit errors of any mark read in it."""
        return [r.bit_errors for r in self.readings if r.readable]

    @property
    def label_present(self) -> bool:
        return self.label.get(LABEL_KEY) == "true"

    @property
    def watermark_share(self) -> float:
        readable = self.frames_checked - self.frames_unreadable
        return self.frames_marked / readable if readable else 0.0

    @property
    def video_frame_mark(self) -> frame_mark.FrameMarkReading | None:
        """Video: the frame mark read over all the frames checked at once (None for images)."""
        if self.kind != "video":
            return None
        return frame_mark.accumulate([r.frame for r in self.readings])

    @property
    def watermark_present(self) -> bool:
        """Image: a mark decodes. Video: one decodes in at least half the readable frames
        checked (a re-encode can blur a few frames, and an unmarked frame decodes by chance
        with p < 1e-6, so a majority is a safe verdict), or the frame mark decodes over all
        of them together (a strong re-encode leaves too little of it in any one frame; an
        unmarked video passes with p < 1e-6 too, frame_mark.FALSE_POSITIVE_BOUND)."""
        if self.frames_marked > 0 and self.watermark_share >= 0.5:
            return True
        video = self.video_frame_mark
        return video is not None and self.frames_checked > 1 and video.detected

    @property
    def labelled(self) -> bool:
        return self.c2pa.label_present or self.label_present or self.watermark_present

    def to_json(self) -> dict:
        return {
            "file": str(self.path),
            "kind": self.kind,
            "labelled": self.labelled,
            "c2pa": {**self.c2pa.to_json(), "label_present": self.c2pa.label_present},
            "metadata_label": {"present": self.label_present, "tags": self.label},
            "watermark": {
                "present": self.watermark_present,
                "frames_checked": self.frames_checked,
                "frames_marked": self.frames_marked,
                "frames_unreadable": self.frames_unreadable,
                "share": round(self.watermark_share, 4),
                "frame_mark_over_all_frames_bit_errors": (
                    self.video_frame_mark.bit_errors
                    if self.video_frame_mark is not None and self.video_frame_mark.readable
                    else None
                ),
                "max_bit_errors": {
                    "frame_mark": frame_mark.MAX_BIT_ERRORS,
                    "face_mark": face_mark.MAX_BIT_ERRORS,
                },
                "frames": [r.to_json() for r in self.readings],
            },
        }

    def _c2pa_line(self) -> str:
        c = self.c2pa
        if not c.present:
            return "C2PA: absent"
        if c.error:
            return f"C2PA: unreadable ({c.error})"
        if not c.valid:
            return f"C2PA: INVALID ({', '.join(c.failures) or c.state})"
        trust = "trusted issuer" if c.trusted else "unverified issuer"
        source = ", ".join(t.rsplit("/", 1)[-1] for t in c.digital_source_types) or "none"
        return (
            f"C2PA: valid signature, {trust} ({c.issuer or '?'}; {c.signer or '?'}), "
            f"digitalSourceType {source}" + (f", by {c.generator}" if c.generator else "")
        )

    def lines(self) -> list[str]:
        out = [f"file: {self.path} ({self.kind})", self._c2pa_line()]
        if self.label_present:
            out.append(
                f"metadata label: present ({self.label.get('Software', 'slimswap')}, "
                f"model {self.label.get('slimswap:model', '?')})"
            )
        else:
            out.append("metadata label: absent")
        readable = self.frames_checked - self.frames_unreadable
        state = "present" if self.watermark_present else "absent"
        if readable == 0:
            out.append("watermark: cannot tell (image too small and no face found)")
        elif self.kind == "image":
            reading = self.readings[0]
            faces = ", ".join(str(f.bit_errors) for f in reading.faces) or "no face found"
            frame = reading.frame.bit_errors if reading.frame.readable else "-"
            out.append(
                f"watermark: {state} (bit errors of 64: frame mark {frame}, face marks "
                f"{faces}; marked means <= {frame_mark.MAX_BIT_ERRORS} / "
                f"<= {face_mark.MAX_BIT_ERRORS})"
            )
        else:
            video = self.video_frame_mark
            over_all = (
                f"; frame mark over all {self.frames_checked} frames: {video.bit_errors} bit "
                f"errors of 64, marked means <= {frame_mark.MAX_BIT_ERRORS}"
                if video is not None and video.readable
                else ""
            )
            out.append(
                f"watermark: {state} (found in {self.frames_marked}/{readable} frames checked, "
                f"{100 * self.watermark_share:.0f}%{over_all})"
            )
        out.append(
            "verdict: "
            + ("labelled as synthetic (slimswap)" if self.labelled else "no synthetic label found")
        )
        return out


def _slimswap_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k.startswith("slimswap:") or k == "Software"}


def verify_file(path: Path, frames: int = 12, analyser: FaceAnalyser | None = None) -> VerifyReport:
    """Read the C2PA manifest, the metadata label and the watermark of an image or video.

    Videos are sampled at `frames` evenly spaced frames. Unreadable files raise UserError.
    """
    path = Path(path)
    analyser = analyser or FaceAnalyser(detector="dlib")  # what the robustness table measured
    if media.is_video(path):
        info = media.probe_video(path)
        report = VerifyReport(path=path, kind="video", label=_slimswap_tags(info.tags))
        report.c2pa = read_c2pa(path)
        step = max(1, info.frame_count // max(1, frames))
        index = 0
        for batch in media.read_frames(path, 16):
            for frame in batch:
                if index % step == 0 and report.frames_checked < frames:
                    report.readings.append(read_watermark(frame, analyser))
                index += 1
            if report.frames_checked >= frames:
                break
        return report
    image = media.read_image(path)  # raises UserError for anything that is not an image
    report = VerifyReport(
        path=path, kind="image", label=_slimswap_tags(media.read_image_metadata(path))
    )
    report.c2pa = read_c2pa(path)
    report.readings.append(read_watermark(np.asarray(image), analyser))
    return report
