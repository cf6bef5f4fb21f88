"""Where the shared contract lives: ``../shared`` beside the checkout, found in one place.

Collection-time lists (for ``parametrize``) come from :func:`case_params`; a test that reads
the folder itself takes the ``conformance`` fixture (tests/conftest.py). Both skip loudly,
with the reason below in ``pytest -ra``, when the folder is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONFORMANCE = SHARED / "conformance"
ABSENT = f"the shared conformance cases are absent (looked for {CONFORMANCE}): the contract's floor was NOT run"


def present() -> bool:
    return CONFORMANCE.is_dir()


def cases(kind: str, pattern: str = "*") -> list[Path]:
    """The cases of ``check/`` or ``run/`` (files and folders), as the shared runner selects them."""
    folder = CONFORMANCE / kind
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob(pattern))
            if not p.name.startswith((".", "_")) and not p.name.endswith(".md")
            and (p.suffix == ".flow" or p.is_dir())]


def case_params(paths: list[Path], xfail: dict[str, str] | None = None) -> list[Any]:
    """``pytest.param`` per case (ids are the names); one loud skip when the folder is absent."""
    if not present():
        return [pytest.param(None, id="conformance-absent", marks=pytest.mark.skip(reason=ABSENT))]
    xfail = xfail or {}
    return [pytest.param(p, id=p.name,
                         marks=[pytest.mark.xfail(strict=True, reason=xfail[p.name])] if p.name in xfail else [])
            for p in paths]
