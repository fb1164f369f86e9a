"""CLI command: simulate."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from jobs.cli import DAY, cli, config_option, echo_json, handle_errors


def _missing(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, float]:
    out = {}
    for v in values:
        name, _, rate = v.partition("=")
        try:
            out[name] = float(rate)
        except ValueError:
            raise click.BadParameter(f"{v!r}: use COLUMN=RATE, e.g. distance_km=0.9") from None
    return out


@cli.command(
    epilog="Example: fraudwatch simulate --days 30 --start 2026-01-01 --out landing\n\n"
    "Example: fraudwatch simulate --days 7 --start 2026-02-01 --out landing "
    "--new-pattern-start 2026-02-03 --missing distance_km=0.9"
)
@config_option
@click.option("--days", type=click.IntRange(1, 3660), default=30, show_default=True)
@click.option("--start", type=DAY, required=True, help="First day (YYYY-MM-DD).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("landing"),
    show_default=True,
    help="Landing folder: writes transactions/ and labels/ inside.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl"]), default="parquet")
@click.option("--cards", type=click.IntRange(10), default=3000, show_default=True)
@click.option("--amount-inflation", type=float, default=0.0, help="Daily growth of amounts.")
@click.option("--drift-start", type=DAY, help="When amount inflation starts.")
@click.option("--new-pattern-start", type=DAY, help="When card-testing fraud appears.")
@click.option("--missing", multiple=True, callback=_missing, help="COLUMN=RATE of nulls.")
@click.option("--defect-start", type=DAY, help="First day of the missing-values defect.")
@click.option("--defect-end", type=DAY, help="Last day of the defect.")
@click.option("--malformed-rate", type=click.FloatRange(0, 1), default=0.0)
@click.option(
    "--label-delay-days",
    type=click.FloatRange(0, 365),
    default=7.0,
    show_default=True,
    help="Chargebacks: ~92% reported within this many days, the rest up to twice as late.",
)
@click.option(
    "--camouflage-start",
    type=DAY,
    help="From this day most frauds mimic their card's habits (a shift that hurts the model).",
)
@click.option(
    "--camouflage-share",
    type=click.FloatRange(0, 1),
    default=0.7,
    show_default=True,
    help="Share of the frauds camouflaged from --camouflage-start.",
)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def simulate(
    config_path: str | None,
    days: int,
    start: date,
    out: Path,
    seed: int,
    fmt: str,
    cards: int,
    amount_inflation: float,
    drift_start: date | None,
    new_pattern_start: date | None,
    missing: dict[str, float],
    defect_start: date | None,
    defect_end: date | None,
    malformed_rate: float,
    label_delay_days: float,
    camouflage_start: date | None,
    camouflage_share: float,
    as_json: bool,
) -> None:
    """Write synthetic card transactions and chargebacks into a landing folder."""
    if defect_start and defect_end and defect_end < defect_start:
        raise click.BadParameter(
            f"--defect-end {defect_end} is before --defect-start {defect_start}",
            param_hint="--defect-start/--defect-end",
        )
    from jobs.simulate import SimulationOptions
    from jobs.simulate import simulate as run

    options = SimulationOptions(
        n_cards=cards,
        n_merchants=max(20, cards // 5),
        amount_inflation=amount_inflation,
        drift_start=drift_start or (start if amount_inflation else None),
        new_pattern_start=new_pattern_start,
        missing=missing,
        defect_start=defect_start,
        defect_end=defect_end,
        malformed_rate=malformed_rate,
        label_delay_days=label_delay_days,
        camouflage_start=camouflage_start,
        camouflage_share=camouflage_share,
    )
    summary = run(out, start=start, days=days, seed=seed, options=options, fmt=fmt)
    if as_json:
        echo_json(summary.to_dict())
        return
    click.echo(
        f"{summary.rows:,} transactions over {summary.days} day(s) in {out}: "
        f"{summary.frauds:,} frauds ({summary.fraud_rate:.2%}), {summary.chargebacks:,} "
        f"chargebacks reported, {summary.malformed} malformed rows"
    )
    for pattern, n in summary.by_pattern.items():
        click.echo(f"  {pattern}: {n}")
