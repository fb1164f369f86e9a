"""A version's calibrator in the registry: stored as JSON in the artifact store at training
time (its sha256 in the lineage, ``extra.calibration``), verified on every load like the
model itself, never pickled (issue 18; the calibration is :mod:`reports.calibration`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobs.errors import FraudwatchError
from reports.calibration import Calibrator

if TYPE_CHECKING:
    from registry import Registry


def store_calibrator(reg: Registry, cal: Calibrator | None, method: str) -> dict[str, Any] | None:
    """Put the calibrator in the artifact store; what the lineage records of it."""
    if cal is None:
        return None
    sha = reg.artifacts.put(cal.to_json())
    return {
        "method": method,
        "sha256": sha,
        "rows": cal.n,
        "frauds": cal.frauds,
        "breakpoints": len(cal.x),
    }


def load_calibrator(reg: Registry, model_name: str, version: int) -> Calibrator | None:
    """The version's calibrator, verified by sha256; None for a version trained before
    calibration existed (or whose validation data had a single class)."""
    info = reg.get_version(model_name, version)
    entry = (info.lineage.extra or {}).get("calibration")
    if not entry:
        return None
    text = reg.artifacts.get(
        str(entry["sha256"]), what=f"{model_name} version {version}'s calibrator"
    )
    try:
        return Calibrator.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise FraudwatchError(
            f"{model_name} version {version}'s calibrator is not readable: {exc}"
        ) from None
