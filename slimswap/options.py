"""What a swap is told besides its files, declared once.

`PasteOptions` (how a swapped crop goes back), `SwapOptions` (which faces, detection, labels)
and `JobSettings` (plus the model and device) are dataclasses whose fields carry their
command-line flags and help (`cli`): `slimswap swap`, `batch` and `live` take them as
options (slimswap.cli.common.options_from), the web UI and the evaluations build them in
code, and batch jobs store them as JSON. Light on imports, so the command line starts fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from slimswap.errors import UserError
from slimswap.swap.registry import AUTO_RULE, AUTO_RULE_LIVE

MASKS = ("box", "area", "region")
DETECTORS = ("mediapipe", "dlib")
BLENDS = ("feather", "poisson")
Picture = Path | np.ndarray  # a file, or an RGB uint8 image already in memory


def cli(
    *flags: str,
    help: str,
    cli_type: object = None,
    parse=None,
    show=None,
    renamed: tuple[str, ...] = (),
) -> dict:
    """Field metadata that makes a dataclass field a command-line option too.

    flags: the option's names (`--mask`); help: its text. cli_type/parse/show: the type the
    command line gives, how it becomes the field's value and how the default is shown
    (`--mask box,area` for the field ("box", "area")). renamed: former spellings of the
    option, still taken for one release with a note on stderr naming flags[0].
    """
    meta = {"flags": flags, "help": help, "cli_type": cli_type, "parse": parse, "show": show}
    return {"cli": {**meta, "renamed": renamed}}


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in text.split(",") if m.strip())


@dataclass
class PasteOptions:
    """How a swapped crop goes back into its frame."""

    masks: tuple[str, ...] = field(
        default=("box", "area"),
        metadata=cli(
            "--mask",
            help="Blend masks, combined: box, area (face outline), region (face parts from the "
            "mesh; see --mask-regions).",
            cli_type=str,
            parse=comma_list,
            show=",".join,
        ),
    )
    regions: tuple[str, ...] = field(
        default=("skin", "eyes", "brows", "nose", "lips"),
        metadata=cli(
            "--mask-regions",
            help="With --mask region: parts to swap, of skin, eyes, brows, nose, lips, "
            "mouth-inside (left out: the target's teeth show through).",
            cli_type=str,
            parse=comma_list,
            show=",".join,
        ),
    )
    blend: str = field(
        default="feather",
        metadata=cli(
            "--blend", help="Paste-back: feather (soft edge) or poisson (seamless clone)."
        ),
    )
    color_correction: bool = field(
        default=True,
        metadata=cli(
            "--color-correction/--no-color-correction",
            help="Match the swap's colours to the target's skin (overall, then its local tone: "
            "no blotches or casts); --no-color-correction keeps its own.",
        ),
    )
    detail: bool = field(
        default=True,
        metadata=cli(
            "--detail/--no-detail",
            help="Faces larger than the model's crop: lay the target's own fine skin texture "
            "back over the upsampled swap (no soft faces at 100 % zoom); its strong edges, "
            "such as glasses rims, stay out.",
        ),
    )

    def check(self) -> None:
        bad = [m for m in self.masks if m not in MASKS]
        if bad or not self.masks:
            got = ",".join(self.masks) or "nothing"
            raise UserError(f"--mask takes a comma list of {', '.join(MASKS)}, got {got}")
        if self.blend not in BLENDS:
            raise UserError(f"--blend must be feather or poisson, got {self.blend!r}")
        from slimswap.face.mask import REGIONS

        bad = [r for r in self.regions if r not in REGIONS]
        if bad or not self.regions:
            got = ",".join(self.regions) or "nothing"
            raise UserError(f"--mask-regions takes a comma list of {', '.join(REGIONS)}, got {got}")


@dataclass
class SwapOptions(PasteOptions):
    """Which faces are swapped, how they are found, and how the output is written."""

    face_selector: str = field(
        default="one",
        metadata=cli(
            "--face-selector",
            help="Which target faces: one (largest), many (all), reference (the person in --reference).",
        ),
    )
    reference: Picture | None = field(
        default=None,
        metadata=cli(
            "--reference",
            cli_type=Path | None,
            help="Photo of the person to replace, for --face-selector reference.",
        ),
    )
    detect_every: int = field(
        default=5,
        metadata=cli(
            "--detect-every",
            help="Video: run the face detector every N frames (landmarks every frame).",
        ),
    )
    detector: str = field(
        default="mediapipe",
        metadata=cli(
            "--detector",
            help="Face analysis: mediapipe (default; BlazeFace + face mesh, Apache-2.0 models, "
            "GPU-capable) or dlib (HOG + 68-point model, non-commercial).",
        ),
    )
    upsample: int = field(
        default=0,
        metadata=cli(
            "--upsample",
            help="Detector upsampling for small faces (1 = ~4x slower, finds ~40 px faces).",
        ),
    )
    label: bool = field(
        default=True,
        metadata=cli(
            "--label/--no-label",
            help="Metadata label saying the file is synthetic; the invisible watermark always stays.",
        ),
    )
    overwrite: bool = field(
        default=False, metadata=cli("--overwrite", help="Replace the output if it exists.")
    )
    c2pa_cert: Path | None = field(
        default=None,
        metadata=cli(
            "--c2pa-cert",
            cli_type=Path | None,
            help="PEM certificate chain for the C2PA content credentials (default: "
            "SLIMSWAP_C2PA_CERT, else a local self-signed pair made on first use).",
        ),
    )
    c2pa_key: Path | None = field(
        default=None,
        metadata=cli(
            "--c2pa-key", cli_type=Path | None, help="PEM private key matching --c2pa-cert."
        ),
    )
    batch_size: int = 16  # video frames per swapper call

    def check(self) -> None:
        from slimswap.face.select import SELECTORS

        super().check()
        if self.face_selector not in SELECTORS:
            raise UserError(
                f"--face-selector must be one, many or reference, got {self.face_selector!r}"
            )
        if self.face_selector == "reference" and self.reference is None:
            raise UserError(
                "--face-selector reference needs --reference IMAGE (a photo of the person to replace)"
            )
        if self.detect_every < 1:
            raise UserError("--detect-every must be at least 1")
        if self.detector not in DETECTORS:
            raise UserError(f"--detector must be mediapipe or dlib, got {self.detector!r}")
        if "region" in self.masks and self.detector == "dlib":
            raise UserError(
                "--mask region needs the face mesh: use --detector mediapipe (dlib has 68 points)"
            )
        if self.batch_size < 1:
            raise UserError("--batch-size must be at least 1")


MODE_HELP = (
    "Model: quality (teacher), lite (small, fast), classic (no learned weights), auto ({auto}; "
    "`slimswap models` shows what it picks here), or a model name or .onnx/.safetensors file."
)


@dataclass
class JobSettings(SwapOptions):
    """One swap job: the model and device, and its SwapOptions.

    `slimswap swap` runs one job at once; `slimswap batch` queues many, each storing its
    settings as JSON so `job retry` reruns it exactly as planned.
    """

    mode: str = field(
        default="auto",
        metadata=cli(
            "--mode",
            "-m",
            help=MODE_HELP.format(auto=AUTO_RULE),
            renamed=("--swapper",),
        ),
    )
    device: str = field(default="cpu", metadata=cli("--device", help="cpu or cuda."))

    def check(self) -> None:
        super().check()
        if self.device not in ("cpu", "cuda"):
            raise UserError(f"--device must be cpu or cuda, got {self.device!r}")

    def options(self) -> SwapOptions:
        return SwapOptions(**{f.name: getattr(self, f.name) for f in fields(SwapOptions)})

    def to_json(self) -> dict:
        if self.reference is not None and not isinstance(self.reference, (str, Path)):
            raise ValueError("a job's reference must be a file, not an image in memory")
        data = asdict(self)
        data["masks"] = list(self.masks)
        data["regions"] = list(self.regions)
        data["reference"] = None if self.reference is None else str(self.reference)
        for key in ("c2pa_cert", "c2pa_key"):  # absolute, so a retry from elsewhere finds them
            value = getattr(self, key)
            data[key] = None if value is None else str(Path(value).resolve())
        return data

    @classmethod
    def from_json(cls, data: dict) -> JobSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("masks", "regions"):
            if key in values:
                values[key] = tuple(values[key])
        for key in ("reference", "c2pa_cert", "c2pa_key"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)


LIVE_OUTPUTS = ("window", "file", "v4l2")


@dataclass
class LiveSettings(JobSettings):
    """`slimswap live`: where frames come from and go to, besides a swap job's settings.

    The frame path (faces, masks, model, labels) is a job's; the live loop adds the source
    (a camera, or a file or URL played as a live source), the output and the statistics file.
    """

    mode: str = field(  # JobSettings' field, with what `auto` means in a live loop
        default="auto",
        metadata=cli(
            "--mode",
            "-m",
            help=MODE_HELP.format(auto=f"{AUTO_RULE}; {AUTO_RULE_LIVE}"),
            renamed=("--swapper",),
        ),
    )
    camera: int | None = field(
        default=None,
        metadata=cli("--camera", help="Camera index (the default source: camera 0)."),
    )
    input: str | None = field(
        default=None,
        metadata=cli(
            "--input",
            help="Instead of a camera: a video file or http(s) URL of one (replayed in real "
            "time, as a live source) or a live stream URL (rtsp://, rtmp://, udp://, .m3u8; "
            "read as it arrives).",
        ),
    )
    output: str = field(
        default="window",
        metadata=cli(
            "--output",
            help="window (on screen; needs OpenCV with GUI support), file (a video at --out) "
            "or v4l2 (a virtual camera for video calls; --out /dev/videoN).",
        ),
    )
    out: Path | None = field(
        default=None,
        metadata=cli(
            "--out",
            cli_type=Path | None,
            help="--output file: the video to write (.mp4/.mov/.mkv); --output v4l2: the "
            "v4l2loopback device (default: the first one found).",
        ),
    )
    stats: Path | None = field(
        default=None,
        metadata=cli(
            "--stats",
            cli_type=Path | None,
            help="At the end, write latency (p50/p95) and throughput (frames captured, "
            "processed, dropped, fps) as JSON here.",
        ),
    )
    detect_scale: float = field(
        default=0.5,
        metadata=cli(
            "--detect-scale",
            help="Run the face detector on a copy scaled by this factor (faster; the full "
            "frame is searched when the copy shows no face); 1 = full size.",
        ),
    )
    camera_size: str | None = field(
        default=None,
        metadata=cli("--camera-size", help="Ask the camera for this size, WxH (e.g. 640x480)."),
    )
    seconds: float = field(
        default=0.0,
        metadata=cli("--seconds", help="Stop after this many seconds (0: at Ctrl-C or the end)."),
    )

    def check(self) -> None:
        super().check()
        if self.camera is not None and self.input is not None:
            raise UserError("give --camera N or --input FILE_OR_URL, not both")
        if self.camera is not None and self.camera < 0:
            raise UserError(f"--camera must be 0 or more, got {self.camera}")
        if self.output not in LIVE_OUTPUTS:
            raise UserError(
                f"--output must be one of {', '.join(LIVE_OUTPUTS)}, got {self.output!r}"
            )
        if self.output == "file" and self.out is None:
            raise UserError("--output file needs --out VIDEO (e.g. --out live.mp4)")
        if self.output == "window" and self.out is not None:
            raise UserError("--out is for --output file or v4l2, not window")
        if not 0 < self.detect_scale <= 1:
            raise UserError(f"--detect-scale must be in (0, 1], got {self.detect_scale}")
        if self.seconds < 0:
            raise UserError("--seconds must be 0 (no limit) or more")
        if self.camera_size is not None:
            self.camera_wh()

    def camera_wh(self) -> tuple[int, int] | None:
        """--camera-size as (width, height), or None for the camera's own size."""
        if self.camera_size is None:
            return None
        w, sep, h = self.camera_size.lower().partition("x")
        if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
            raise UserError(f"--camera-size takes WxH, e.g. 640x480, got {self.camera_size!r}")
        return int(w), int(h)
