"""The exceptions the jobs raise, each named for what the caller does next.

::

    FraudwatchError                 base; the CLI prints its message and exits 1
    ├── ConfigError                 fix config.toml or the environment (exit 2)
    ├── WarehouseLocked             another process holds the warehouse: retry later
    ├── InputFileError              a landing file is unreadable or lacks a column: fix the file
    ├── LandingFileChanged          a file changed after it was ingested: investigate
    ├── NoChampion                  train a model and promote it first
    ├── FeatureMismatch             the model expects other features than the pipeline makes
    ├── NotEnoughData               widen the window or wait for labels to mature
    └── PromotionRefused            the gate said no (exit 3); see the reasons

Registry errors live in :mod:`registry.errors`; the CLI maps both trees.
"""

from __future__ import annotations


class FraudwatchError(Exception):
    """Base of every error fraudwatch reports to its user."""

    exit_code = 1


class ConfigError(FraudwatchError):
    """The configuration (file or environment) is invalid: fix it and run again."""

    exit_code = 2


class WarehouseLocked(FraudwatchError):
    """Another process is writing the warehouse: wait for it and retry."""


class InputFileError(FraudwatchError):
    """A landing file cannot be ingested at all (unreadable, missing a mapped column)."""

    def __init__(self, path: str, message: str, column: str | None = None) -> None:
        self.path = path
        self.column = column
        where = f"{path}: column {column!r}: " if column else f"{path}: "
        super().__init__(where + message)


class LandingFileChanged(FraudwatchError):
    """A landing file's content changed after it was ingested."""


class NoChampion(FraudwatchError):
    """No model holds the champion alias yet."""

    def __init__(self, model_name: str) -> None:
        super().__init__(
            f"model {model_name!r} has no champion yet: run `fraudwatch train` and then "
            "`fraudwatch promote VERSION` (see `fraudwatch registry list`)"
        )


class FeatureMismatch(FraudwatchError):
    """The model's feature list differs from what the feature pipeline produces."""

    def __init__(self, version: int, missing: list[str], extra: list[str]) -> None:
        self.missing = missing
        self.extra = extra
        parts = []
        if missing:
            parts.append("missing from the pipeline: " + ", ".join(missing))
        if extra:
            parts.append("produced but unknown to the model: " + ", ".join(extra))
        super().__init__(
            f"model version {version} does not match the feature pipeline ({'; '.join(parts)})"
        )


class NotEnoughData(FraudwatchError):
    """There is too little (labelled) data for the requested work."""


class PromotionRefused(FraudwatchError):
    """The promotion gate refused the candidate; nothing was changed."""

    exit_code = 3

    def __init__(
        self,
        version: int,
        reasons: list[str],
        report: str | None = None,
        *,
        failed: list[str] | None = None,
    ) -> None:
        self.version = version
        self.reasons = reasons
        self.report = report
        self.failed = list(failed or [])  # the names of the rules that failed
        text = f"promotion of version {version} refused by the gate:\n" + "\n".join(
            f"  - {r}" for r in reasons
        )
        if report:
            text += f"\nreport: {report}"
        super().__init__(text)
