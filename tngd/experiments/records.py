"""Result files of the experiments: JSON encoding, compact JSON layout, the environment
record, and the one-thread setting every timed process uses."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch


def set_one_thread() -> None:
    torch.set_num_threads(1)


def write_json(path: Path, obj: dict[str, Any], compact_key: str | None = None) -> None:
    """JSON with indent 1, except ``obj[compact_key]`` written on one line (small files)."""
    head = {k: v for k, v in obj.items() if k != compact_key}
    text = json.dumps(head, indent=1, default=json_default)
    if compact_key is not None and compact_key in obj:
        tail = json.dumps(obj[compact_key], separators=(",", ":"), default=json_default)
        text = text[: text.rstrip().rfind("}")].rstrip() + f',\n "{compact_key}": {tail}\n}}'
    path.write_text(text + "\n")


def json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, torch.dtype):
        return str(o)
    return str(o)


def environment() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads_per_process": 1,
        "platform": platform.platform(),
    }
