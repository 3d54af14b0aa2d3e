"""What the Dagster UI shows for an asset: markdown tables and a correlation heatmap as an inline PNG.

The PNG is encoded here with NumPy and zlib (a PNG is a zlib stream of filtered scanlines in CRC'd chunks),
so the UI gets a picture without a plotting library in the dependencies.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pandas as pd

CELL_PIXELS = 14
GAP_PIXELS = 10
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an (height, width, 3) uint8 image as a PNG (8-bit truecolour, no filtering)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    scanlines = np.hstack([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)])  # filter byte 0

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 9))
            + chunk(b"IEND", b""))


def diverging_colours(values: np.ndarray) -> np.ndarray:
    """-1 blue, 0 white, +1 red; NaN grey. Returns uint8 RGB with one more axis than `values`."""
    v = np.clip(np.nan_to_num(values, nan=0.0), -1.0, 1.0)[..., None]
    white, red, blue = np.array([255.0, 255.0, 255.0]), np.array([178.0, 24.0, 43.0]), np.array([33.0, 102.0, 172.0])
    colours = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    colours[np.isnan(values)] = 170.0
    return colours.round().astype(np.uint8)


def heatmap_png(matrices: list[np.ndarray]) -> bytes:
    """Square matrices of the same size side by side, one coloured block per cell, separated by a gap."""
    size = matrices[0].shape[0]
    blocks = [np.kron(diverging_colours(m), np.ones((CELL_PIXELS, CELL_PIXELS, 1))).astype(np.uint8) for m in matrices]
    gap = np.full((size * CELL_PIXELS, GAP_PIXELS, 3), 255, np.uint8)
    pieces = [piece for block in blocks for piece in (block, gap)][:-1]
    return png_bytes(np.hstack(pieces))


def heatmap_markdown(panels: dict[str, pd.DataFrame]) -> str:
    """Markdown with an inline PNG of correlation matrices (same labels) and the label order under it."""
    titles = list(panels)
    labels = list(panels[titles[0]].columns)
    if not labels:
        return "_no numeric column pairs to correlate_"
    image = base64.b64encode(heatmap_png([panels[t].loc[labels, labels].to_numpy(float) for t in titles])).decode()
    return (f"![{' | '.join(titles)}](data:image/png;base64,{image})\n\n"
            f"Panels, left to right: {', '.join(titles)}. Colour: -1 blue, 0 white, +1 red.\n\n"
            f"Rows and columns, top to bottom and left to right: {', '.join(map(str, labels))}.")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured markdown table (floats rounded, missing values blank)."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (float, np.floating)):
            return f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
