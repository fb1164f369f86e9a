"""config.toml, loaded and validated into typed, frozen settings.

Every key is documented in the README's configuration section. An unknown
key, a wrong type or a missing required value fails with the key's dotted
name and the file, before any work starts. Relative paths resolve against the
config file's folder, so cron can run fraudwatch from anywhere. Secrets are
never written in the file: it names environment variables, read here on
demand by :func:`secret`.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.errors import ConfigError

CONFIG_ENV = "FRAUDWATCH_CONFIG"
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
CANONICAL = ("transaction_id", "event_time", "card_id", "merchant_id", "amount")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(
            f"{name!r} is not a valid column name (lower case letters, digits and _, "
            "starting with a letter)"
        )
    return name


class Columns(_Section):
    """Canonical name = source column name."""

    transaction_id: str = "transaction_id"
    event_time: str = "event_time"
    card_id: str = "card_id"
    merchant_id: str = "merchant_id"
    amount: str = "amount"
    label: str | None = None


class Source(_Section):
    transactions: str = "landing/transactions/*.parquet"
    labels: str | None = None
    label_delay_days: Annotated[int, Field(ge=0, le=365)] = 7
    future_tolerance_hours: Annotated[float, Field(ge=0)] = 24.0
    columns: Columns = Columns()
    # extra model inputs carried from the source: canonical name = source column
    numeric_columns: dict[str, str] = {}
    categorical_columns: dict[str, str] = {}
    # label feed columns: canonical name = source column
    label_columns: dict[Literal["transaction_id", "is_fraud", "reported_at"], str] = {}
    csv_delimiter: str = ","
    csv_encoding: Literal["utf-8", "latin-1", "utf-16"] = "utf-8"
    # when set (e.g. "_SUCCESS"), a landing file is read only once this file exists in its folder
    ready_marker: str | None = None
    # analysts' dispositions feed (jobs/dispositions.py): glob, and canonical name = source column
    dispositions: str | None = None
    disposition_columns: dict[
        Literal["transaction_id", "disposition", "analyst", "reviewed_at", "note"], str
    ] = {}

    @field_validator("numeric_columns", "categorical_columns")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            _check_ident(name)
            if name in CANONICAL or name in ("label", "is_fraud"):
                raise ValueError(f"{name!r} is a canonical column and cannot be an extra")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> Source:
        both = set(self.numeric_columns) & set(self.categorical_columns)
        if both:
            raise ValueError(f"declared both numeric and categorical: {sorted(both)}")
        return self


class Features(_Section):
    card_windows_days: list[Annotated[int, Field(ge=1, le=365)]] = [1, 7, 30]
    merchant_windows_days: list[Annotated[int, Field(ge=1, le=365)]] = [1, 7, 30]
    night_start_hour: Annotated[int, Field(ge=0, le=23)] = 22
    night_end_hour: Annotated[int, Field(ge=0, le=23)] = 6

    @field_validator("card_windows_days", "merchant_windows_days")
    @classmethod
    def _nonempty(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("at least one window is needed")
        return sorted(set(v))


class Quality(_Section):
    max_missing_rate: Annotated[float, Field(ge=0, le=1)] = 0.2
    # a feature over max_missing_rate fails only if it is this much more missing than in
    # the champion's training data (otherwise it is missing by design: a warning)
    max_missing_increase: Annotated[float, Field(ge=0, le=1)] = 0.1
    min_fraud_rate: Annotated[float, Field(ge=0, le=1)] = 0.0005
    max_fraud_rate: Annotated[float, Field(ge=0, le=1)] = 0.2
    min_rows: Annotated[int, Field(ge=1)] = 1000
    min_frauds: Annotated[int, Field(ge=1)] = 30
    min_label_coverage: Annotated[float, Field(ge=0, le=1)] = 0.9


class Training(_Section):
    window_days: Annotated[int, Field(ge=1)] = 45
    # the most recent matured days kept out of the default training window, so the
    # promotion gate has an out-of-time labelled window to compare candidate and champion on
    holdout_days: Annotated[int, Field(ge=0)] = 14
    start: date | None = None
    end: date | None = None
    validation_fraction: Annotated[float, Field(gt=0, lt=0.9)] = 0.2
    seed: int = 42
    quality: Quality = Quality()


class Model(_Section):
    name: str = "fraud"
    params: dict[str, Any] = {}
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    num_boost_round: Annotated[int, Field(ge=1)] = 1000
    # patience, in rounds, on the gate's primary metric alone (validation average precision
    # is noisy with a few hundred frauds: a short patience stops at a few dozen trees)
    early_stopping_rounds: Annotated[int, Field(ge=1)] = 100

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", v):
            raise ValueError("model name: letters, digits, '_', '.', '-' (at most 64)")
        return v


class Scoring(_Section):
    batch_size: Annotated[int, Field(ge=100)] = 200_000
    # rows whose features one query computes, then scored batch_size at a time: the
    # query reads the history once per chunk, not once per batch
    feature_chunk_size: Annotated[int, Field(ge=100)] = 1_000_000
    # inference policy, kept apart from the model: how a missing input is filled
    missing: Literal["native", "zero", "reference_median"] = "native"
    fill: dict[str, float] = {}
    num_threads: Annotated[int, Field(ge=0)] = 0


class Warehouse(_Section):
    # DuckDB's memory cap; past it, joins, sorts and windows spill to <warehouse>.duckdb.tmp/
    memory_limit: str = "1.2GB"
    # ingest streams landing files into the warehouse: a smaller cap keeps it lean
    ingest_memory_limit: str = "128MB"
    threads: Annotated[int, Field(ge=0)] = 0  # 0: one per core
    # how long a command waits for another process's hold on the warehouse file (a run's
    # writing stage, an analyst's read-only session) before it gives up, changing nothing
    lock_wait_seconds: Annotated[float, Field(ge=0)] = 30.0

    @field_validator("memory_limit", "ingest_memory_limit")
    @classmethod
    def _size(cls, v: str) -> str:
        if not re.fullmatch(_SIZE, v.strip()):
            raise ValueError("a size such as '2GB' or '512MiB'")
        return v.strip()

    def ingest_limit(self) -> str:
        """The cap for ingest: ``ingest_memory_limit``, unless ``memory_limit`` is smaller."""
        return min(self.memory_limit, self.ingest_memory_limit, key=size_bytes)


_SIZE = r"(\d+(?:\.\d+)?)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)"
_UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 2**10, "MiB": 2**20}
_UNITS |= {"GiB": 2**30, "TiB": 2**40}


def size_bytes(size: str) -> float:
    """'1.5GB' -> 1.5e9 (DuckDB's units: KB = 1000 bytes, KiB = 1024)."""
    match = re.fullmatch(_SIZE, size.strip())
    if match is None:
        raise ValueError(f"not a size: {size!r}")
    return float(match[1]) * _UNITS[match[2]]


class Email(_Section):
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "ssl", "none"] = "starttls"
    sender: str = "fraudwatch@localhost"
    recipients: list[str] = []
    username_env: str | None = "FRAUDWATCH_SMTP_USER"
    password_env: str | None = "FRAUDWATCH_SMTP_PASSWORD"
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    ca_file: str | None = None


class Slack(_Section):
    webhook_url_env: str = "FRAUDWATCH_SLACK_WEBHOOK_URL"
    timeout_seconds: Annotated[float, Field(gt=0)] = 15.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3


class Alerts(_Section):
    channels: list[Literal["file", "email", "slack"]] = ["file"]
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.5
    daily_budget: Annotated[int, Field(ge=1)] = 100
    # transactions older than this (before the latest event in the warehouse) are scored but
    # not alerted on: a backlog or a newly promoted champion never floods analysts with old cases
    max_age_days: Annotated[float, Field(gt=0)] = 2.0
    max_attempts: Annotated[int, Field(ge=1)] = 10
    report_url: str | None = None
    email: Email = Email()
    slack: Slack = Slack()


class Dispositions(_Section):
    """What each disposition value says (compared trimmed and lower case); any other value
    is quarantined as ``bad_disposition``."""

    fraud: list[str] = ["confirmed_fraud"]  # a label is_fraud = true
    legitimate: list[str] = ["legitimate"]  # a label is_fraud = false
    no_label: list[str] = ["unreachable"]  # recorded, no label

    @field_validator("fraud", "legitimate", "no_label")
    @classmethod
    def _values(cls, v: list[str]) -> list[str]:
        out = [x.strip().lower() for x in v]
        if any(not x for x in out):
            raise ValueError("a disposition value cannot be blank")
        return out

    @model_validator(mode="after")
    def _disjoint(self) -> Dispositions:
        if not self.fraud or not self.legitimate:
            raise ValueError("dispositions.fraud and dispositions.legitimate need a value each")
        for a, b in (("fraud", "legitimate"), ("fraud", "no_label"), ("legitimate", "no_label")):
            both = set(getattr(self, a)) & set(getattr(self, b))
            if both:
                raise ValueError(f"dispositions.{a} and {b} both list {sorted(both)}")
        return self

    def meaning(self, value: str) -> bool | None:
        """True, False or None (no label) for a known value; KeyError for any other."""
        v = value.strip().lower()
        if v in self.fraud:
            return True
        if v in self.legitimate:
            return False
        if v in self.no_label:
            return None
        raise KeyError(value)


class Estimation(_Section):
    """Performance estimated from calibrated scores before labels mature (issue 18)."""

    calibration: Literal["isotonic", "platt"] = "isotonic"
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.9
    simulations: Annotated[int, Field(ge=50, le=5000)] = 400
    # the metric whose estimated drop below the champion's validation figure is an alarm
    metric: Literal[
        "average_precision", "precision_at_threshold", "recall_at_threshold", "card_precision_at_k"
    ] = "average_precision"
    max_drop: Annotated[float, Field(ge=0, le=1)] = 0.1
    # the calibration kept current: a day's estimate uses its version's calibrator refitted on
    # the version's scores of the latest this many matured days (once they hold half as many frauds
    # as its validation data did); 0 = the training-time calibrator only
    recalibration_days: Annotated[int, Field(ge=0, le=365)] = 28


class Drift(_Section):
    reference_start: date | None = None
    reference_end: date | None = None
    current_days: Annotated[int, Field(ge=1)] = 7
    bins: Annotated[int, Field(ge=2, le=100)] = 10
    psi_threshold: Annotated[float, Field(gt=0)] = 0.2
    numeric_test: Literal["ks", "wasserstein"] = "wasserstein"
    categorical_test: Literal["jensenshannon", "chi2"] = "jensenshannon"
    ks_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.05
    wasserstein_threshold: Annotated[float, Field(gt=0)] = 0.1
    jensenshannon_threshold: Annotated[float, Field(gt=0, le=1)] = 0.1
    chi2_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.05
    drift_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    missing_tolerance: Annotated[float, Field(gt=0, le=1)] = 0.05
    new_category_share: Annotated[float, Field(ge=0, le=1)] = 0.01
    top_features: Annotated[int, Field(ge=0)] = 5
    reference_rows: Annotated[int, Field(ge=1000)] = 500_000


class Reports(_Section):
    cadence: Literal["every_run", "daily", "never"] = "every_run"
    performance_days: Annotated[int, Field(ge=1)] = 30
    retention_days: Annotated[int, Field(ge=1)] = 90
    currency: Annotated[str, Field(min_length=1, max_length=8)] = "EUR"
    drift: Drift = Drift()


class Promotion(_Section):
    primary_metric: str = "average_precision"
    min_improvement: Annotated[float, Field(ge=0)] = 0.0
    max_regression: dict[str, Annotated[float, Field(ge=0)]] = {
        "card_precision_at_k": 0.02,
        "recall_at_threshold": 0.02,
    }
    require_data_quality: bool = True
    min_labelled_days: Annotated[int, Field(ge=1)] = 7
    min_frauds: Annotated[int, Field(ge=1)] = 20
    window_days: Annotated[int, Field(ge=1)] = 14
    bootstrap_samples: Annotated[int, Field(ge=0)] = 300
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    auto: bool = False


_CRON = re.compile(r"^\S+(\s+\S+){4}$")


class Schedule(_Section):
    run: str | None = "*/15 * * * *"
    reports: str | None = "0 6 * * *"
    retrain: str | None = "0 3 * * 0"
    timezone: str = "UTC"
    misfire_grace_seconds: Annotated[int, Field(ge=1)] = 300

    @field_validator("run", "reports", "retrain")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None  # "" disables the job
        if v is not None and not _CRON.match(v.strip()):
            raise ValueError(f"{v!r} is not a 5-field cron expression")
        return v


class Registry(_Section):
    url: str | None = None  # default: sqlite:///<data_dir>/registry.db
    url_env: str | None = None  # e.g. FRAUDWATCH_REGISTRY_URL for a Postgres DSN with a password
    actor: str | None = None  # recorded as who; default: $USER@host


class Engine(_Section):
    """Which engine runs the data-parallel steps: DuckDB embedded (the default) or Spark."""

    kind: Literal["duckdb", "spark"] = "duckdb"


_MASTER = re.compile(r"^(local(\[(\d+|\*)(,\s*\d+)?\])?|(spark|mesos|k8s)://\S+|yarn)$")
_SPARK_OWN = ("spark.master", "spark.remote", "spark.app.name", "spark.sql.session.timeZone")


class Spark(_Section):
    """``[spark]``: where the Spark engine runs and writes (``[engine] kind = "spark"``)."""

    # a master URL (local[2], spark://host:7077, yarn, k8s://https://host:6443) or a Spark
    # Connect URL (remote = "sc://host:15002"), never both
    master: str | None = None
    remote: str | None = None
    app_name: str = "fraudwatch"
    # the Parquet tables' folder: a path on a filesystem every executor mounts (the commit
    # renames files); relative paths resolve against the config file's folder
    warehouse: str = "var/spark-warehouse"
    # passed to the session as is, e.g. {"spark.executor.memory" = "4g"}
    conf: dict[str, str | int | float | bool] = {}
    # training on the driver: at most this many rows; past it, legitimate rows are sampled
    # (with weights) so the set fits
    max_training_rows: Annotated[int, Field(ge=1000)] = 5_000_000

    @field_validator("master")
    @classmethod
    def _master(cls, v: str | None) -> str | None:
        if v is not None and not _MASTER.match(v.strip()):
            raise ValueError(
                f"{v!r} is not a Spark master URL (local, local[2], local[*], "
                "spark://host:7077, yarn, k8s://https://host:6443)"
            )
        return v.strip() if v else v

    @field_validator("remote")
    @classmethod
    def _remote(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^sc://[^\s/]+", v.strip()):
            raise ValueError(f"{v!r} is not a Spark Connect URL (sc://host:15002)")
        return v.strip() if v else v

    @field_validator("warehouse")
    @classmethod
    def _warehouse(cls, v: str) -> str:
        scheme = re.match(r"^([a-z][a-z0-9+.-]*)://", v.strip())
        if scheme and scheme[1] != "file":
            raise ValueError(
                f"{v!r}: a {scheme[1]}:// URL is not supported; the Parquet tables need a "
                "filesystem path every executor mounts (their commit renames files)"
            )
        if not v.strip():
            raise ValueError("an empty path")
        return v.strip().removeprefix("file://")

    @field_validator("conf")
    @classmethod
    def _conf(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if not key.startswith("spark."):
                raise ValueError(f"{key!r} is not a Spark setting (they start with 'spark.')")
            if key in _SPARK_OWN:
                raise ValueError(f"{key!r} is set by fraudwatch (use spark.master or remote)")
        return v

    @model_validator(mode="after")
    def _one_endpoint(self) -> Spark:
        if self.master and self.remote:
            raise ValueError(
                "spark.master and spark.remote are both set: a master URL or a Spark "
                "Connect URL, not both"
            )
        return self


class Settings(_Section):
    data_dir: str = "var"
    warehouse: Warehouse = Warehouse()
    source: Source = Source()
    features: Features = Features()
    training: Training = Training()
    model: Model = Model()
    scoring: Scoring = Scoring()
    alerts: Alerts = Alerts()
    reports: Reports = Reports()
    promotion: Promotion = Promotion()
    schedule: Schedule = Schedule()
    registry: Registry = Registry()
    engine: Engine = Engine()
    spark: Spark = Spark()
    dispositions: Dispositions = Dispositions()
    estimation: Estimation = Estimation()

    @model_validator(mode="after")
    def _channels_configured(self) -> Settings:
        a = self.alerts
        if "email" in a.channels:
            if not a.email.recipients:
                raise ValueError(
                    "alerts.email.recipients is required when 'email' is in alerts.channels"
                )
            if not a.email.sender:
                raise ValueError(
                    "alerts.email.sender is required when 'email' is in alerts.channels"
                )
        return self


class Config:
    """Validated settings plus the file they came from and path resolution."""

    def __init__(self, settings: Settings, path: Path) -> None:
        self.settings = settings
        self.path = path.resolve()
        self.root = self.path.parent

    # -- paths ---------------------------------------------------------------
    def resolve(self, value: str | Path) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.root / p)

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.settings.data_dir)

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @property
    def performance_days_dir(self) -> Path:
        """The performance report's kept days (jobs/performance_days.py): a cache."""
        return self.data_dir / "cache" / "performance"

    @property
    def estimates_dir(self) -> Path:
        """Each day's performance estimate, kept between runs (jobs/estimate_cache.py): a cache."""
        return self.data_dir / "cache" / "estimates"

    @property
    def transactions_glob(self) -> str:
        return str(self.resolve(self.settings.source.transactions))

    @property
    def labels_glob(self) -> str | None:
        s = self.settings.source.labels
        return str(self.resolve(s)) if s else None

    @property
    def dispositions_glob(self) -> str | None:
        s = self.settings.source.dispositions
        return str(self.resolve(s)) if s else None

    @property
    def spark_warehouse(self) -> Path:
        """The Spark engine's Parquet tables (``[spark] warehouse``)."""
        return self.resolve(self.settings.spark.warehouse)

    @property
    def registry_url(self) -> str:
        reg = self.settings.registry
        if reg.url_env:
            return secret(reg.url_env, "registry.url_env")
        if reg.url:
            if reg.url.startswith("sqlite:///") and not reg.url.startswith("sqlite:////"):
                return "sqlite:///" + str(self.resolve(reg.url[len("sqlite:///") :]))
            return reg.url
        return f"sqlite:///{self.data_dir / 'registry.db'}"

    def extra_columns(self) -> dict[str, str]:
        """Extra model inputs: canonical name -> 'numeric' | 'categorical'."""
        s = self.settings.source
        out = {name: "numeric" for name in s.numeric_columns}
        out.update({name: "categorical" for name in s.categorical_columns})
        return out


def secret(env_name: str, key: str) -> str:
    """Read a secret from the environment variable that config names under ``key``."""
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(
            f"environment variable {env_name} (named by config key {key}) is not set; "
            "secrets are read from the environment only"
        )
    return value


def find_config_path(explicit: str | Path | None) -> Path:
    """--config, else $FRAUDWATCH_CONFIG, else ./config.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    return Path("config.toml")


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        else:
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """' (did you mean 'threshold'?)' for a mistyped key, from the keys its section knows."""
    import difflib

    model: Any = Settings
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        model = field.annotation if field is not None else None
    known = list(getattr(model, "model_fields", {}))
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_settings(data: dict[str, Any], path: Path) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = _loc(tuple(err["loc"]))
            named = re.match(r"(?:Value error, )?([a-z_]+(?:\.[a-z_]+)+) (.*)", err["msg"])
            if err["type"] == "extra_forbidden":
                lines.append(f"{path}: unknown key {key!r}{_did_you_mean(tuple(err['loc']))}")
            elif err["type"] == "missing":
                lines.append(f"{path}: missing required key {key!r}")
            elif not err["loc"] and named:  # a rule across sections names its own key
                lines.append(f"{path}: key {named[1]!r} {named[2]}")
            else:
                lines.append(f"{path}: key {key!r}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def _warn_local_report_links(settings: Settings, path: Path) -> None:
    """Digests sent away from this machine link to a local file unless alerts.report_url is set."""
    a = settings.alerts
    remote = [c for c in a.channels if c in ("email", "slack")]
    if remote and not a.report_url:
        import logging

        logging.getLogger("fraudwatch.config").warning(
            f"{path}: alerts.report_url is not set, so {' and '.join(remote)} digests link to "
            "the reports index as a file:// path on this server, which readers elsewhere "
            "cannot open; set alerts.report_url to where the reports are served",
            extra={"fields": {"key": "alerts.report_url", "channels": remote}},
        )


def load_config(explicit: str | Path | None = None) -> Config:
    """Find, read and validate the configuration; raise ConfigError naming file and key."""
    path = find_config_path(explicit)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} not found (use --config PATH or set {CONFIG_ENV})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    settings = parse_settings(data, path)
    _warn_local_report_links(settings, path)
    return Config(settings, path)
