"""What a swap is told besides its files, declared once.

`PasteOptions` (how a swapped crop goes back), `SwapOptions` (which faces, detection, labels)
and `JobSettings` (plus the model and device) are dataclasses whose fields carry their
command-line flags and help (`option`): `slimswap swap` and `slimswap batch` take them as
options (cli.options_from), the web UI and the evaluations build them in code, and batch
jobs store them as JSON. Light on imports, so the command line starts fast.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from slimswap.errors import UserError

MASKS = ("box", "area", "region")
DETECTORS = ("mediapipe", "dlib")
BLENDS = ("feather", "poisson")
Picture = Path | np.ndarray  # a file, or an RGB uint8 image already in memory


def cli(*flags: str, help: str, cli_type: object = None, parse=None, show=None) -> dict:
    """Field metadata that makes a dataclass field a command-line option too.

    flags: the option's names (`--mask`); help: its text. cli_type/parse/show: the type the
    command line gives, how it becomes the field's value and how the default is shown
    (`--mask box,area` for the field ("box", "area")).
    """
    return {
        "cli": {"flags": flags, "help": help, "cli_type": cli_type, "parse": parse, "show": show}
    }


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
            help="Match the swap's colours to the target's skin; --no-color-correction keeps its own.",
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
            help="Model: quality (teacher), lite (small, fast), classic (no learned weights), "
            "auto (lite if present).",
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
