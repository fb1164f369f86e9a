"""HTML reports: Jinja2 with autoescape and strict undefined, one base layout, dumb templates.

Every formatting decision (numbers to text, colours, order) is made here into
small view dicts; templates only place them. Pages are self-contained: inline
CSS, charts as inline SVG, no scripts, no external requests, and a size that
depends on the number of features and days, never on the number of rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from markupsafe import Markup

from reports import svg
from reports.drift import ALARM_KINDS, DriftResult, FeatureDrift

_env: jinja2.Environment | None = None


def env() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            loader=jinja2.PackageLoader("reports", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _env


def _render(template: str, **ctx: Any) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return env().get_template(template).render(generated=now, **ctx)


def num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}%}"


def money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.2f}"


def signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3f}"


def _svg(text: str) -> Markup:
    # reports.svg escapes every text it writes; matplotlib (model cards) escapes its own
    return Markup(text)  # noqa: S704


# -- drift ---------------------------------------------------------------------------------
REASON_WORDS = {
    "missing": "missing rate",
    "constant": "became constant",
    "new values": "unseen values",
    "distribution": "distribution",
    "psi": "PSI",
}
STATUS_VERDICT = {
    "alarm": "Drift alarm",
    "drift": "Some features drifted",
    "ok": "No drift",
}
STATUS_CLASS = {"alarm": "bad", "drift": "warn", "ok": "ok"}


def _statistic(f: FeatureDrift) -> str:
    text = num(f.statistic, 4) if f.statistic == f.statistic else "n/a"
    if f.p_value is not None:
        text += f" (p {f.p_value:.3g})"
    return text


def _new_values(f: FeatureDrift) -> str:
    if f.kind == "categorical":
        if not f.new_values:
            return "none"
        return f"{', '.join(f.new_values)} ({pct(f.new_share)} of rows)"
    if not f.new_share:
        return "none"
    return f"{pct(f.new_share)} outside the reference's {f.new_values[0]}"


def _feature_row(f: FeatureDrift) -> dict[str, Any]:
    return {
        "name": f.name,
        "kind": f.kind,
        "test": f.test,
        "statistic": _statistic(f),
        "threshold": num(f.threshold, 3),
        "psi": num(f.psi, 3),
        "psi_flag": f.psi_flag,
        "missing": f"{pct(f.ref_missing_rate)} → {pct(f.cur_missing_rate)}",
        "missing_flag": "missing" in f.reasons,
        "drifted": f.drifted,
        "alarming": f.alarming,
        "status": "alarm" if f.alarming else ("drifted" if f.drifted else "stable"),
        "status_class": "bad" if f.alarming else ("warn" if f.drifted else "ok"),
        "reasons": [
            {"text": REASON_WORDS.get(r, r), "cls": "bad" if r in ALARM_KINDS else "warn"}
            for r in f.reasons
        ],
        "importance": "n/a" if f.importance is None else pct(f.importance),
        "rank": f.rank,
        "new_values": _new_values(f),
    }


def drift_headline(result: DriftResult) -> str:
    """The verdict in one sentence: the status and what drifted, most important first."""
    drifted = [f for f in result.features if f.drifted]
    if not drifted:
        return f"{STATUS_VERDICT['ok']}: none of {len(result.features)} features drifted"
    names = ", ".join(f.name for f in drifted[:6]) + (" …" if len(drifted) > 6 else "")
    return (
        f"{STATUS_VERDICT[result.status]}: {len(drifted)} of {len(result.features)} features "
        f"drifted ({names}), carrying {pct(result.weighted_share)} of the champion's importance"
    )


def drift_view(result: DriftResult) -> dict[str, Any]:
    drifted = [f for f in result.features if f.drifted]
    chart_features = drifted + ([result.score] if result.score is not None else [])
    return {
        "verdict": drift_headline(result),
        "status": result.status,
        "status_class": STATUS_CLASS[result.status],
        "alarms": list(result.alarms),
        "drift": result.dataset_drift,
        "share": pct(result.share_drifted),
        "weighted_share": pct(result.weighted_share),
        "n_drifted": len(drifted),
        "n_features": len(result.features),
        "n_reference": f"{result.n_reference:,}",
        "n_current": f"{result.n_current:,}",
        "threshold_share": pct(result.policy.drift_share, 0),
        "psi_threshold": num(result.policy.psi_threshold, 2),
        "rows": [_feature_row(f) for f in result.features],
        "score": _feature_row(result.score) if result.score else None,
        "score_flag": result.score_flag,
        "charts": [
            {
                "name": f.name,
                "alarming": f.alarming,
                "svg": _svg(
                    svg.distribution(
                        f.bin_labels,
                        f.ref_share,
                        f.cur_share,
                        f"{f.name}: {', '.join(REASON_WORDS.get(r, r) for r in f.reasons) or 'stable'}",
                    )
                ),
            }
            for f in chart_features
        ],
    }


def render_drift(result: DriftResult, *, title: str, meta: dict[str, str]) -> str:
    return _render("drift.html", title=title, meta=meta, v=drift_view(result))


# -- model card -----------------------------------------------------------------------------
def _training_facts(extra: dict[str, Any]) -> list[tuple[str, str]]:
    """Trees and early stopping, and what the features meant, where the version says."""
    facts = []
    stopping = extra.get("early_stopping")
    if stopping:
        facts.append(
            (
                "Trees",
                f"{stopping.get('trees')} kept of {stopping.get('rounds_run')} rounds "
                f"(early stopping on {stopping.get('metric')}, patience {stopping.get('patience')})",
            )
        )
    if "feature_version" in extra:
        facts.append(
            (
                "Feature definitions",
                f"version {extra['feature_version']}: merchant risk over windows ending "
                f"{extra.get('label_delay_days')} day(s) (the label delay) before each transaction",
            )
        )
    return facts


def model_card_view(card: dict[str, Any]) -> dict[str, Any]:
    from reports import charts  # matplotlib, only for the cards (written once per version)

    lin = card.get("lineage", {})
    extra = lin.get("extra", {})
    importance = extra.get("importance_gain", {}) or {}
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])[:25]
    total = sum(importance.values()) or 1.0
    quality = lin.get("data_quality", {}) or {}
    code = lin.get("code_version", {}) or {}
    metrics = lin.get("metrics", {}) or {}
    return {
        "title": f"Model card: {card.get('model')} version {card.get('version')}",
        "aliases": ", ".join(card.get("aliases", [])) or "none",
        "description": card.get("description") or "",
        "tags": sorted((card.get("tags") or {}).items()),
        "facts": [
            ("Registered", str(card.get("created_at", ""))[:19].replace("T", " ")),
            ("By", str(card.get("actor", ""))),
            (
                "Training window",
                f"{str(lin.get('training_start'))[:10]} .. {str(lin.get('training_end'))[:10]}",
            ),
            ("Labels known up to", str(lin.get("label_cutoff") or "")[:19].replace("T", " ")),
            ("Rows", f"{lin.get('rows', 0):,}"),
            *_training_facts(extra),
            ("Fraud rate", pct(lin.get("fraud_rate"), 3)),
            ("Training data fingerprint", str(lin.get("fingerprint", ""))),
            ("Artifact sha256", str(card.get("artifact_sha256", ""))),
            (
                "Code",
                f"{code.get('git_commit') or 'unknown'}{' (dirty)' if code.get('git_dirty') else ''}, package {code.get('package_version')}",
            ),
        ],
        "quality_status": quality.get("status", "unknown"),
        "quality_checks": [
            {
                "name": c.get("name"),
                "passed": c.get("passed"),
                "warning": c.get("severity") == "warning",
                "detail": c.get("detail"),
            }
            for c in quality.get("checks", [])
        ],
        "metrics": [
            (k, num(v) if isinstance(v, float) and v < 10 else f"{v:,.0f}")
            for k, v in metrics.items()
        ],
        "params": sorted((str(k), str(v)) for k, v in (lin.get("params") or {}).items()),
        # every input, most important first (ties, e.g. unused features, by name)
        "features": [
            {
                "name": n,
                "gain": pct(importance.get(n, 0.0) / total),
                "categorical": n in lin.get("categorical_features", []),
                "position": lin.get("feature_names", []).index(n) + 1,
                "description": (extra.get("feature_descriptions") or {}).get(n, ""),
            }
            for n in sorted(
                lin.get("feature_names", []), key=lambda n: (-importance.get(n, 0.0), n)
            )
        ],
        "importance": _svg(
            charts.bars(
                [n for n, _ in ranked], [g / total for n, g in ranked], "Importance (share of gain)"
            )
        )
        if ranked
        else None,
        "evaluation": card.get("extra", {}).get("evaluation"),
    }


def render_model_card(card: dict[str, Any]) -> str:
    v = model_card_view(card)
    return _render("model_card.html", title=v["title"], meta={}, v=v)
