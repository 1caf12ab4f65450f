"""Helpers shared by test modules (tests/ is on pytest's pythonpath: `from helpers import ...`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def run_cli(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """`slimswap ARGS...` in a fresh interpreter, as a user would run it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "slimswap.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_report(report_json: Path, *args: str | Path) -> dict:
    """`slimswap ARGS...` of a command that writes a JSON report: it exits 0 and every field
    of `report_json` is filled in (evaluate.report.missing_fields); the report, parsed."""
    from slimswap.evaluate.report import missing_fields

    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(Path(report_json).read_text())
    assert missing_fields(data) == []
    return data


def bundled_face_frames(clip_step: int):
    """The bundled photos (Grace Hopper, the astronaut) and every `clip_step`-th frame of the
    bundled clip: real faces of three people that need no ../shared data."""
    from slimswap import media
    from slimswap.paths import EXAMPLES_DIR

    frames = [
        media.read_image(EXAMPLES_DIR / "grace_hopper.jpg"),
        media.read_image(EXAMPLES_DIR / "astronaut.png"),
    ]
    clip = [f for batch in media.read_frames(EXAMPLES_DIR / "clip.mp4", 8) for f in batch]
    return frames + clip[::clip_step]


def aligned_bundled_faces(analyser, size: int, clip_step: int = 20):
    """The largest face of each of `bundled_face_frames(clip_step)`, aligned at `size` px:
    (crops uint8 (N, size, size, 3), dlib descriptors (N, 128) float32, landmarks (N, 68, 2)
    in crop pixels as `transform_points` gives them, identity labels (N,): Hopper 0, the
    astronaut 1, the clip's person 2)."""
    import numpy as np

    from slimswap.face.align import align, transform_points

    frames = bundled_face_frames(clip_step)
    crops, embs, lms = [], [], []
    for frame in frames:
        face = analyser.embed(frame, max(analyser.detect(frame), key=lambda f: f.area))
        crop, affine = align(frame, face.kps, size)
        crops.append(crop)
        embs.append(face.embedding)
        lms.append(transform_points(face.landmarks, affine))
    labels = np.array([0, 1] + [2] * (len(frames) - 2))
    return np.stack(crops), np.stack(embs).astype(np.float32), np.stack(lms), labels


def box_face(x0: float, y0: float, side: float = 100.0, score: float = 1.0):
    """A face known only by its box: enough for selection by size and for tracking."""
    import numpy as np

    from slimswap.face.record import Face

    return Face(
        bbox=np.array([x0, y0, x0 + side, y0 + side], np.float32),
        landmarks=np.zeros((68, 2), np.float32),
        kps=np.zeros((5, 2), np.float32),
        score=score,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def ui_server(log_path: Path, timeout: float = 90) -> Iterator[str]:
    """`slimswap ui` on a free port in a subprocess, as a user starts it, its output in
    `log_path`: the page's URL once it answers; the server is stopped afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "slimswap.cli", "ui", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    urllib.request.urlopen(url, timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"slimswap ui did not start; see {log_path}") from None
                    time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
