"""Shared fixtures. The package is imported from the source tree."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.procs import Stack  # noqa: E402


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Redis + the real control plane on loopback, torn down after the test."""
    s = Stack(tmp_path)
    try:
        yield s.start()
    finally:
        s.close()
