"""The trading commands: ``policystore decisions`` (read a decision log) and ``policystore replay``.

Both are loaded only when used (see ``LAZY_COMMANDS`` in :mod:`policystore.cli.main`).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any, Final

import click

from policystore.consumers.decision_log import DEFAULT_LOG, JsonlDecisionLog, read_decisions
from policystore.consumers.replay import (
    COMPARE_MODES,
    ModeResult,
    load_prices,
    load_signals,
    plot_equity,
    replay_modes,
    sample_paths,
)

__all__ = ["decisions", "replay"]

EXIT_INVALID: Final = 3  # the exit status for an invalid value (see policystore.cli.context.EXIT_CODES)


def _json_wanted(flag: bool) -> bool:
    """The command's own --json, or the global one (``policystore --json decisions``)."""
    if flag:
        return True
    ctx = click.get_current_context()
    root = ctx.find_root()
    return bool(root.params.get("as_json") or getattr(ctx.obj, "json", False))


def _fail(message: str) -> None:
    click.echo(message, err=True)
    click.get_current_context().exit(EXIT_INVALID)


def _decision_line(record: dict[str, Any]) -> str:
    outcome = "accepted" if record.get("accepted") else "refused "
    size = f"qty {record['quantity']:.6g}" if "quantity" in record else ""
    return (
        f"{record.get('time', '?'):<25} v{record.get('policy_version', '?'):<4} {record.get('mode', ''):<24} "
        f"{record.get('symbol', '?'):<8} {record.get('strategy', '?'):<12} {record.get('side', '?'):<4} "
        f"{outcome} {record.get('reason', '?'):<16} {size}"
    ).rstrip()


@click.command()
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Decision log (JSON Lines); default $POLICYSTORE_DECISION_LOG or ./{DEFAULT_LOG}.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show the newest N.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def decisions(log_path: Path | None, limit: int, as_json: bool) -> None:
    """List recorded trading decisions: accepted or refused, why, and under which policy version."""
    path = log_path or Path(os.environ.get("POLICYSTORE_DECISION_LOG", DEFAULT_LOG))
    try:
        records = read_decisions(path, limit)
    except FileNotFoundError:
        _fail(f"There is no decision log at {path}; pass --log FILE.")
        return
    except (OSError, ValueError) as exc:
        _fail(f"The decision log cannot be read: {exc}.")
        return
    if _json_wanted(as_json):
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo(f"No decisions recorded in {path}.")
        return
    for record in records:
        click.echo(_decision_line(record))


def _render(results: list[ModeResult]) -> str:
    lines = [f"{'mode':<26}{'signals':>8}{'accepted':>9}{'trades':>7}{'PnL':>10}{'max DD':>8}  refused"]
    for r in results:
        refused = ", ".join(f"{reason} {count}" for reason, count in r.refused.items()) or "none"
        lines.append(
            f"{r.mode:<26}{r.signals:>8}{r.accepted:>9}{r.trades:>7}{r.pnl:>+10.2f}{r.max_drawdown:>8.1%}  {refused}"
        )
    return "\n".join(lines)


def _inputs(
    signals_csv: Path | None, prices_csv: Path | None, *, sample: bool, modes: tuple[str, ...], compare_modes: bool
) -> tuple[Path, Path, list[str]]:
    if sample:
        signals_csv, prices_csv = sample_paths()
    if signals_csv is None or prices_csv is None:
        raise click.UsageError("Give SIGNALS_CSV and --prices PRICES_CSV, or --sample.")
    if compare_modes and modes:
        raise click.UsageError("Use either --mode or --compare-modes, not both.")
    chosen = list(COMPARE_MODES) if compare_modes else list(dict.fromkeys(modes)) or ["NORMAL"]
    return signals_csv, prices_csv, chosen


@click.command()
@click.argument("signals_csv", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--prices",
    "prices_csv",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Prices CSV (time,symbol,price).",
)
@click.option("--sample", is_flag=True, help="Use the sample signals and prices that ship with policystore.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    metavar="MODE",
    help="A mode or preset to replay under (repeatable); default NORMAL.",
)
@click.option("--compare-modes", is_flag=True, help=f"Replay under every built-in mode ({', '.join(COMPARE_MODES)}).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Draw the equity curves, one line per mode, into this PNG (needs matplotlib).",
)
@click.option(
    "--equity",
    type=click.FloatRange(min=0, min_open=True),
    default=1_000.0,
    show_default=True,
    help="Starting equity of the paper account.",
)
@click.option("--fee-bps", type=click.FloatRange(min=0), default=5.0, show_default=True, help="Fee per fill.")
@click.option("--slippage-bps", type=click.FloatRange(min=0), default=2.0, show_default=True, help="Slippage per fill.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the sizer's learner.")
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also append every decision to this JSON Lines log (see 'policystore decisions').",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def replay(  # noqa: PLR0917 - click passes one argument per option
    signals_csv: Path | None,
    prices_csv: Path | None,
    sample: bool,
    modes: tuple[str, ...],
    compare_modes: bool,
    plot: Path | None,
    equity: float,
    fee_bps: float,
    slippage_bps: float,
    seed: int,
    log_path: Path | None,
    as_json: bool,
) -> None:
    """Replay SIGNALS_CSV and --prices through the sizer, executor and a paper broker, per risk mode.

    Each mode runs in its own in-memory store with that mode active. Prints, per mode:
    signals, accepted, refusals by reason, trades, PnL and maximum drawdown.

    \b
    Examples:
      policystore replay --sample --compare-modes --plot replay.png
      policystore replay signals.csv --prices prices.csv --mode DEFENSIVE --json
    """  # noqa: D301 - click reads \b as "keep these lines as written"
    signals_csv, prices_csv, chosen = _inputs(
        signals_csv, prices_csv, sample=sample, modes=modes, compare_modes=compare_modes
    )
    try:
        signals, prices = load_signals(signals_csv), load_prices(prices_csv)
        results = asyncio.run(
            replay_modes(chosen, signals, prices, equity=equity, fee_bps=fee_bps, slippage_bps=slippage_bps, seed=seed)
        )
    except ValueError as exc:
        _fail(f"Cannot replay: {exc}.")
        return
    if log_path is not None:
        with JsonlDecisionLog(log_path, sync_every=1_000) as log:
            for result in results:
                for decision in result.decisions:
                    log.record(decision)
    if plot is not None:
        plot_equity(results, plot)
    if _json_wanted(as_json):
        click.echo(json.dumps([r.summary() for r in results], indent=2))
    else:
        click.echo(_render(results))
        if plot is not None:
            click.echo(f"Equity curves drawn to {plot}.")
