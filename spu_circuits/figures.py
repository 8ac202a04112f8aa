"""Figures as files: PNG bytes that depend on the figure only (no Software stamp), so the
same inputs give byte-identical plots."""

from __future__ import annotations

import io


def png_bytes(fig, dpi: int = 110) -> bytes:
    """`fig` (a matplotlib Figure) as PNG bytes at `dpi`, without metadata; closes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
