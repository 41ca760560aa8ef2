"""The trading commands: ``policystore decisions`` (read a decision log) and ``policystore replay``.

Both are loaded only when used (see ``LAZY_COMMANDS`` in :mod:`policystore.cli.main`).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import click

from policystore.cli.context import CliContext, pass_cli
from policystore.cli.errors import EXIT_OTHER, CommandFailed, PolicyStoreFailure, one_line
from policystore.cli.output import to_json
from policystore.cli.output_audit import render_decisions
from policystore.consumers.decision_log import DEFAULT_LOG, JsonlDecisionLog, read_decisions
from policystore.consumers.replay import (
    COMPARE_MODES,
    ModeResult,
    builtin_policy,
    load_prices,
    load_signals,
    plot_equity,
    replay_modes,
    sample_paths,
)
from policystore.errors import PolicyValidationError, StoreUnavailableError
from policystore.model.modes import PRESETS
from policystore.model.policy import Policy
from policystore.model.trading import TradingState
from policystore.redaction import redact
from policystore.store.sources import Source
from policystore.store.store import PolicyStore

__all__ = ["decisions", "replay"]


def _invalid(message: str, **facts: Any) -> CommandFailed:
    # Input that is no policy value (a CSV file, a log, a mode name) still exits as an invalid value does.
    return CommandFailed(message, exit_code=PolicyValidationError.exit_code, error="InvalidInput", **facts)


@click.command()
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Decision log (JSON Lines); default $POLICYSTORE_DECISION_LOG or ./{DEFAULT_LOG}.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show the newest N.")
@pass_cli
def decisions(obj: CliContext, log_path: Path | None, limit: int) -> None:
    """List recorded trading decisions: accepted, closed or refused, why, and under which policy version.

    One row per decision, oldest first; a refusal's detail (the figures behind
    it) is on the line below its row. --json prints the records whole.
    """
    path = log_path or Path(os.environ.get("POLICYSTORE_DECISION_LOG", DEFAULT_LOG))
    try:
        records = read_decisions(path, limit)
    except FileNotFoundError:
        raise _invalid(f"There is no decision log at {path}; pass --log FILE.", log=str(path)) from None
    except (OSError, ValueError) as exc:
        raise _invalid(f"The decision log cannot be read: {one_line(str(exc))}.", log=str(path)) from exc
    if obj.json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo(f"No decisions recorded in {path}.")
        return
    click.echo(render_decisions(records))


def _render(results: list[ModeResult]) -> str:
    names = [f"{r.mode} (preset)" if r.preset else r.mode for r in results]
    width = max(26, *(len(n) + 2 for n in names))
    lines = [f"{'mode':<{width}}{'signals':>8}{'accepted':>9}{'trades':>7}{'PnL':>10}{'max DD':>8}  refused"]
    for name, r in zip(names, results, strict=True):
        refused = ", ".join(f"{reason} {count}" for reason, count in r.refused.items()) or "none"
        lines.append(
            f"{name:<{width}}{r.signals:>8}{r.accepted:>9}{r.trades:>7}{r.pnl:>+10.2f}{r.max_drawdown:>8.1%}  {refused}"
        )
    return "\n".join(lines)


def _inputs(signals_csv: Path | None, prices_csv: Path | None, *, sample: bool) -> tuple[Path, Path]:
    if sample:
        return sample_paths()
    if signals_csv is None or prices_csv is None:
        raise click.UsageError("Give SIGNALS_CSV and --prices PRICES_CSV, or --sample.")
    return signals_csv, prices_csv


def _ordered_modes(policy: Policy) -> list[str]:
    """The policy's modes: the built-in ones in their usual order, then its own, by name."""
    return [m for m in COMPARE_MODES if m in policy.modes] + sorted(set(policy.modes) - set(COMPARE_MODES))


def _chosen_modes(policy: Policy, modes: tuple[str, ...], *, compare_modes: bool) -> list[str]:
    """The modes to replay: named ones (of the policy, or presets), every mode, or the active one."""
    if compare_modes and modes:
        raise click.UsageError("Use either --mode or --compare-modes, not both.")
    if compare_modes:
        return _ordered_modes(policy)
    unknown = [m for m in dict.fromkeys(modes) if m not in policy.modes and m not in PRESETS]
    if unknown:
        held = ", ".join(_ordered_modes(policy))
        raise _invalid(
            f"The policy has no mode {', '.join(unknown)}; its modes are {held} "
            f"(and the presets {', '.join(PRESETS)} may be named as what-ifs).",
            modes=_ordered_modes(policy),
            presets=list(PRESETS),
        )
    return list(dict.fromkeys(modes)) or [policy.active_mode]


def _store_policy(obj: CliContext) -> tuple[Policy, str]:
    """Read the store's policy: the live one, or (stale, with a warning) its last-known-good copy."""

    async def action(store: PolicyStore) -> tuple[Policy, Source, StoreUnavailableError | None]:
        error = store.last_error if isinstance(store.last_error, StoreUnavailableError) else None
        return store.snapshot(), store.source, error

    def refused(error: StoreUnavailableError) -> PolicyStoreFailure:
        return PolicyStoreFailure(
            error, f"{one_line(str(error)).rstrip('.')}, or pass --builtin to replay the built-in policy instead."
        )

    try:
        policy, source, error = obj.run(action)
    except StoreUnavailableError as exc:
        raise refused(exc) from exc
    if source in {Source.ENVIRONMENT, Source.DEFAULT}:
        # Only the environment and the defaults answered: that is no policy the store holds.
        raise refused(error or StoreUnavailableError(redact(obj.url), "the live store was not read"))
    origin = f"version {policy.version} of {redact(obj.url)}"
    if source is Source.LAST_KNOWN_GOOD:
        origin += " (its last-known-good copy: the live store cannot be reached)"
    return policy, origin


def _header(policy: Policy, origin: str, results: list[ModeResult]) -> str:
    lines = [f"Replayed {origin}."]
    if policy.emergency.active:
        lines.append(f"The kill switch, on in version {policy.version}, is off in the replay.")
    if policy.trading.state is not TradingState.ACTIVE:
        lines.append(
            f"The firm-wide trading state, {policy.trading.state.value} in version {policy.version}, "
            "is active in the replay (strategy and instrument states apply as stored)."
        )
    presets = [r.mode for r in results if r.preset]
    if presets:
        lines.append(f"What-if: {', '.join(presets)} is a preset the policy does not hold, added to it for the replay.")
    return "\n".join(lines)


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
    help="A mode of the policy, or a preset as a what-if (repeatable); default the active mode.",
)
@click.option("--compare-modes", is_flag=True, help="Replay under every mode of the policy.")
@click.option(
    "--builtin",
    is_flag=True,
    help="Replay the built-in policy (NORMAL, AGGRESSIVE_SMALL_ACCOUNT, DEFENSIVE) instead of the store's.",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the equity curves, one line per mode, into this PNG (needs the plot extra).",
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
@pass_cli
def replay(  # noqa: PLR0917 - click passes one argument per option
    obj: CliContext,
    signals_csv: Path | None,
    prices_csv: Path | None,
    sample: bool,
    modes: tuple[str, ...],
    compare_modes: bool,
    builtin: bool,
    plot: Path | None,
    equity: float,
    fee_bps: float,
    slippage_bps: float,
    seed: int,
    log_path: Path | None,
) -> None:
    """Replay SIGNALS_CSV and --prices through the sizer, executor and a paper broker, under the store's policy.

    The policy is the store's current version: every mode, strategy and hard
    limit in it (the kill switch is off in the replay). Each mode runs in its
    own in-memory copy of that version. Prints which version was replayed, then
    per mode: signals, accepted, refusals by reason, trades, PnL and maximum
    drawdown. Without a store, --builtin replays the built-in policy.

    \b
    Without the plot extra, --plot prints the figures, then says the plot was
    not drawn and exits with status 1.

    \b
    Examples:
      policystore replay --sample --compare-modes --plot replay.png
      policystore replay signals.csv --prices prices.csv --mode DEFENSIVE --json
    """  # noqa: D301 - click reads \b as "keep these lines as written"
    signals_csv, prices_csv = _inputs(signals_csv, prices_csv, sample=sample)
    try:
        signals, prices = load_signals(signals_csv), load_prices(prices_csv)
    except (OSError, ValueError) as exc:
        raise _invalid(f"Cannot replay: {one_line(str(exc))}.") from exc
    policy, origin = (builtin_policy(), "the built-in policy") if builtin else _store_policy(obj)
    chosen = _chosen_modes(policy, modes, compare_modes=compare_modes)
    options: dict[str, Any] = {"equity": equity, "fee_bps": fee_bps, "slippage_bps": slippage_bps, "seed": seed}
    results = asyncio.run(replay_modes(chosen, signals, prices, policy=policy, **options))
    if log_path is not None:
        with JsonlDecisionLog(log_path, sync_every=1_000) as log:
            for result in results:
                for decision in result.decisions:
                    log.record(decision)
    if obj.json:
        click.echo(to_json([r.summary() for r in results]))
    else:
        click.echo(_header(policy, origin, results))
        click.echo(_render(results))
    if plot is not None:
        _plot(results, plot, as_json=obj.json)


def _plot(results: list[ModeResult], plot: Path, *, as_json: bool) -> None:
    try:
        plot_equity(results, plot)
    except ImportError as exc:
        raise CommandFailed(
            f"The figures were printed, but {plot} was not drawn: plotting needs the plot extra "
            "(pip install 'policystore[plot]').",
            exit_code=EXIT_OTHER,
            error="MissingExtra",
            extra="plot",
        ) from exc
    click.echo(f"Equity curves drawn to {plot}.", err=as_json)
