"""Where the models come from: the default hub names, and how a model option is read.

No torch here: the CLI and the flow check model options before anything heavy loads.
A value is a hub id only when it looks like one (`owner/name`, or a bare fair-esm
name for ESM-2); anything with two or more separators, or starting with `.`, `/` or
`~`, is a local path, so a mistyped directory is an error at once, never a download.
"""

from __future__ import annotations

from pathlib import Path

ESM2_3B = "esm2_t36_3B_UR50D"
DNABERT_S = "zhihan1996/DNABERT-S"


def is_local_path(value: str | Path) -> bool:
    """True for a value that can only be a path (see the module docstring)."""
    text = str(value)
    return text.startswith((".", "/", "~")) or text.count("/") + text.count("\\") > 1
