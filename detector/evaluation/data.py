"""Locate the benchmark data sets that the evaluations read.

The data sets are not shipped with the package. They are looked up under
``$BURNRATE_SHARED_DATA`` or, by default, ``shared/data`` beside the repository
folder, the same place the data tests use.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


class DataNotFoundError(FileNotFoundError):
    """A benchmark data set is missing; the message says where it was looked for."""


def shared_data() -> Path:
    override = os.environ.get("BURNRATE_SHARED_DATA")
    return Path(override) if override else REPOSITORY.parent / "shared" / "data"


def dataset(relative: str) -> Path:
    """Return the path of a data set under the shared data folder, or raise."""
    path = shared_data() / relative
    if not path.exists():
        raise DataNotFoundError(
            f"{path} not found: set BURNRATE_SHARED_DATA to the folder that "
            f"contains {relative}"
        )
    return path


def nab_scorer() -> Path:
    """Return the NAB scoring script, kept in ``tools`` beside the data folder."""
    path = shared_data().parent / "tools" / "nab_score.py"
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found: the NAB scorer is expected in tools/ beside the "
            "shared data folder"
        )
    return path
