"""The invisible marks of a video's frames, made by worker processes on frames in shared memory.

The GPU frame path marks its frames in worker processes (`frame_engine.mark_pool`): the marks
are numpy code that would hold the GIL the launching thread needs. Sending the frames there
as pickled arguments cost that thread almost as much (H200, 1280x720, quality: 59.2 fps with
the marks, 95.0 without; its CPU time 12.4 against 9.5 ms a frame, its waits 4.5 against
1.1, RESULTS session 7): every frame went out as 4.1 MB of RGB and planes and came back
as 1.4 MB, pickled and piped by the pool's threads inside the launcher's process.

Here the batch is downloaded straight into a block of shared memory, a job names only the
block and the row, the worker marks the row in place, and the encoder reads the row when its
job is done. A block is reused once the encoder has written it; `SharedBatches.take` waits
for a free one, so the blocks bound how far the launcher runs ahead.

This module imports numpy and the marks, not torch: the workers import it.
"""

from __future__ import annotations

import contextlib
import os
import queue
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np


@dataclass(frozen=True)
class BlockLayout:
    """Where one batch's frames lie in a block: `batch` RGB frames (H, W, 3), then, on the
    planes path, their I420 planes (H * 3 / 2, W)."""

    batch: int
    height: int
    width: int
    planes: bool

    @property
    def rgb_bytes(self) -> int:
        return self.batch * self.height * self.width * 3

    @property
    def nbytes(self) -> int:
        plane_bytes = self.batch * (self.height * 3 // 2) * self.width if self.planes else 0
        return self.rgb_bytes + plane_bytes

    def views(self, buf) -> tuple[np.ndarray, np.ndarray | None]:
        rgb = np.ndarray((self.batch, self.height, self.width, 3), np.uint8, buf)
        if not self.planes:
            return rgb, None
        shape = (self.batch, self.height * 3 // 2, self.width)
        return rgb, np.ndarray(shape, np.uint8, buf, offset=self.rgb_bytes)


def shared_space_free() -> int | None:
    """Bytes free where shared memory lives (/dev/shm on Linux; None where unknown): a
    container's default 64 MB would end a run with SIGBUS at the first write past it."""
    try:
        st = os.statvfs("/dev/shm")
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


class SharedBatches:
    """`count` blocks of shared memory, each one batch of frames (`BlockLayout`)."""

    def __init__(self, layout: BlockLayout, count: int) -> None:
        self.layout = layout
        self._blocks = []
        self._free: queue.Queue[int] = queue.Queue()
        try:
            for k in range(count):
                self._blocks.append(shared_memory.SharedMemory(create=True, size=layout.nbytes))
                self._free.put(k)
        except BaseException:
            self.close()
            raise
        self.views = [layout.views(b.buf) for b in self._blocks]

    @classmethod
    def fitting(cls, layout: BlockLayout, count: int) -> SharedBatches | None:
        """`count` blocks where shared memory has room for them with a margin (half of what
        is free), else None: the caller then sends frames the old way, pickled."""
        free = shared_space_free()
        if free is not None and layout.nbytes * count > free // 2:
            return None
        try:
            return cls(layout, count)
        except OSError:
            return None

    def name(self, block: int) -> str:
        return self._blocks[block].name

    def take(self) -> int:
        """A free block (waits for the encoder to give one back)."""
        return self._free.get()

    def give_back(self, block: int) -> None:
        self._free.put(block)

    def close(self) -> None:
        """Unmap and remove every block (a worker's own mappings go when it drops them,
        `forget_attached`, or exits)."""
        self.views = []
        for b in self._blocks:
            with contextlib.suppress(BufferError):  # a view still held: unmapped at exit
                b.close()
            b.unlink()
        self._blocks = []


# ------------------------------------------------------------------- in a worker process

_attached: dict[str, shared_memory.SharedMemory] = {}


def _attach(name: str) -> shared_memory.SharedMemory:
    """This worker's mapping of block `name`. The creating process owns the block and
    unlinks it; a worker only maps it. (Attaching registers the name with the resource
    tracker, which a spawned worker shares with its parent: the parent's unlink takes it
    back, and taking it back here too made that tracker print a KeyError for every block.)
    A worker keeps at most 32 mappings (a few videos' blocks); past that it drops them all."""
    shm = _attached.get(name)
    if shm is None:
        if len(_attached) >= 32:  # several videos at once share a pool
            forget_attached()
        shm = shared_memory.SharedMemory(name=name)
        _attached[name] = shm
    return shm


def forget_attached() -> None:
    for shm in _attached.values():
        with contextlib.suppress(BufferError):  # a view still alive: unmapped at exit
            shm.close()
    _attached.clear()


def mark_shared(
    name: str, layout: BlockLayout, row: int, faces_kps5: Sequence[np.ndarray] = ()
) -> float:
    """Mark frame `row` of block `name` in place, as the pickled jobs mark their copy
    (`embed_watermark_timed`, on the planes path `embed_watermark_planes_timed`); the
    seconds it took."""
    from slimswap.provenance.watermark import embed_watermark_planes_timed, embed_watermark_timed

    rgb_all, planes_all = layout.views(_attach(name).buf)
    if planes_all is None:
        marked, seconds = embed_watermark_timed(rgb_all[row], faces_kps5)
        rgb_all[row] = marked
    else:
        planes = planes_all[row]
        marked, seconds = embed_watermark_planes_timed(rgb_all[row], planes, faces_kps5)
        if marked is not planes:  # a frame the marks left unchanged comes back as it went
            planes[...] = marked
    return seconds
