"""Seeds, argument checks, and PNG bytes that are the same on every platform."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from fetal_bench.data.phantom.constants import SPLIT_SIZES, _CONFIG_CODES, _SPLITS
from fetal_bench.errors import FetalBenchError


def _rng(seed: int, config: str, split: str, index: int) -> np.random.Generator:
    """The generator for one (seed, config, split, index); SeedSequence mixes the four."""
    entropy = [seed, _CONFIG_CODES[config], _SPLITS.index(split), index]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise FetalBenchError(f"Phantom seed {seed!r} is not a non-negative integer.", "Pass e.g. seed=0.")


def _split_size(config: str, split: str) -> int:
    sizes = SPLIT_SIZES[config]
    if split not in sizes:
        raise FetalBenchError(
            f"The phantom {config!r} config has no split {split!r}.", f"Use one of: {', '.join(sizes)}."
        )
    return sizes[split]


def _first_group_number(config: str, split: str, per_group: int) -> int:
    """Patients/subjects are numbered consecutively over the splits, so no two splits share one."""
    before = _SPLITS[: _SPLITS.index(split)]
    return sum(-(-SPLIT_SIZES[config][s] // per_group) for s in before)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise FetalBenchError(
            f"Phantom image size {size!r} is not (H, W).", "Pass e.g. size=(128, 160)."
        ) from None
    if height < 32 or width < 32 or height > 2048 or width > 2048:
        raise FetalBenchError(
            f"Phantom image size {size!r} is outside 32..2048 pixels.", "Pass e.g. size=(128, 160)."
        )
    return height, width


def _png_bytes(array: np.ndarray) -> bytes:
    """8-bit grayscale PNG of ``array`` with stored (uncompressed) deflate blocks.

    Written by hand rather than with Pillow because compressed deflate output depends on the
    zlib build (Pillow wheels bundle zlib-ng, which promises only the decompressed bytes); a
    stored block is the same bytes everywhere. Every row gets filter type 0 (none).
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    height, width = array.shape
    scanlines = np.zeros((height, width + 1), dtype=np.uint8)
    scanlines[:, 1:] = array
    raw = scanlines.tobytes()
    stream = [b"\x78\x01"]  # zlib header: deflate, 32 KiB window, no dictionary; 0x7801 % 31 == 0
    limit = 65535  # the most one stored block holds
    for start in range(0, len(raw), limit):
        block = raw[start : start + limit]
        final = 1 if start + limit >= len(raw) else 0
        stream.append(struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF) + block)
    stream.append(struct.pack(">I", zlib.adler32(raw)))

    def png_chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", b"".join(stream))
        + png_chunk(b"IEND", b"")
    )
