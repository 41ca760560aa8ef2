"""``policystore trading``: set the trading state of the firm, a strategy or an instrument, or show the states.

A write is ``store.update({path: STATE})`` on ``trading.state``,
``strategies.<name>.state`` or ``instruments.<SYMBOL>.state``, so it is checked
like every other: an operator may move a state toward ``halted``; toward
``active`` needs an admin (the store refuses it, exit 6); a state or symbol the
model refuses, or a strategy the policy does not hold, exits 3.
"""

from __future__ import annotations

from typing import Any

import click

from policystore.cli.context import CliContext, pass_cli
from policystore.cli.fleet_wait import wait_option
from policystore.cli.trading_output import in_force_text, render_trading
from policystore.cli.write_options import write_options
from policystore.cli.writes import Written, write
from policystore.errors import FieldError, PolicyValidationError
from policystore.model.controls import StateVerdict, firm_state, strictest_state
from policystore.model.policy import Policy
from policystore.model.trading import DEFAULT_INSTRUMENT, instrument_key_problem
from policystore.model.trading_view import in_force, state_path, strategy_state, verdict_json
from policystore.store.store import PolicyStore

__all__ = ["trading"]


def _scope_label(strategy: str | None, symbol: str | None) -> str:
    if symbol == DEFAULT_INSTRUMENT:
        return "The default instrument state (every instrument without one of its own)"
    if symbol is not None:
        return f"Instrument {symbol}"
    if strategy is not None:
        return f"Strategy {strategy}"
    return "The firm-wide trading state"


def _in_force(policy: Policy, strategy: str | None, symbol: str | None) -> StateVerdict:
    """The state an order of this scope meets now, with the path that decided it."""
    if symbol is not None:
        return strictest_state(policy, symbol)
    if strategy is not None:
        # An instrument's state may be stricter still; this is the firm's and the strategy's.
        return strategy_state(policy, strategy)
    return firm_state(policy)


def _check_symbol(symbol: str) -> None:
    problem = instrument_key_problem(symbol)
    if problem is not None:
        raise PolicyValidationError([FieldError(f"instruments.{symbol}", problem)])


def _show(obj: CliContext, strategy: str | None, symbol: str | None) -> None:
    """Print every state and control, or the state an order in ``symbol`` (from ``strategy``) meets."""

    async def action(store: PolicyStore) -> Policy:
        return store.snapshot()

    policy = obj.run(action)
    if strategy is not None:
        state_path(policy, strategy=strategy)  # refuses a strategy the policy does not hold
    if symbol is None and strategy is None:
        obj.emit(render_trading(policy), {**in_force(policy), "version": policy.version})
        return
    if symbol is not None:
        _check_symbol(symbol)
        verdict = strictest_state(policy, symbol, strategy)
    else:
        assert strategy is not None  # noqa: S101 - one of the two is given here
        verdict = strategy_state(policy, strategy)
    what = " ".join(
        part for part in (f"of strategy {strategy}" if strategy else "", f"in {symbol}" if symbol else "") if part
    )
    obj.emit(
        f"Orders {what} meet {in_force_text(verdict_json(verdict))} (version {policy.version}).",
        {**verdict_json(verdict), "strategy": strategy, "symbol": symbol, "version": policy.version},
    )


@click.command(short_help="Set the trading state of the firm, a strategy or an instrument.")
@click.argument("state", required=False)
@click.option("--strategy", metavar="NAME", help="Set this strategy's state (strategies.NAME.state).")
@click.option(
    "--symbol",
    metavar="SYMBOL",
    help="Set this instrument's state (instruments.SYMBOL.state); 'default' sets every instrument's without one.",
)
@write_options(reason_required=False)
@wait_option
@pass_cli
def trading(
    obj: CliContext,
    *,
    state: str | None,
    strategy: str | None,
    symbol: str | None,
    by: str,
    reason: str | None,
    expect_version: int | None,
) -> None:
    """Set the trading state of the firm, of one strategy (--strategy) or of one instrument (--symbol).

    \b
    STATE is one of:
      active    orders allowed within the limits
      reducing  only orders that reduce an open position
      halted    no order at all
    The strictest state that applies to an order wins: the firm's (at least
    reducing while the kill switch is on), its strategy's, its instrument's.
    Moving toward halted is tightening (operators may); toward active is
    loosening (admins only). Without STATE, prints the states in force, or with
    --symbol (and --strategy) the state an order there meets and what decided it.

    \b
    Examples:
      policystore trading halted --symbol BTC --reason "exchange halt"
      policystore trading reducing --strategy aggressive --reason "drawdown"
      policystore trading active --reason "all clear"
      policystore trading --symbol BTC --strategy moderate
    """  # noqa: D301 - click reads \b as "keep these lines as written"
    if state is None:
        _show(obj, strategy, symbol)
        return
    if strategy is not None and symbol is not None:
        raise click.UsageError("Give --strategy or --symbol, not both: a state belongs to one scope.")
    if not obj.dry_run and (reason is None or not reason.strip()):
        raise click.UsageError("Setting a trading state needs --reason TEXT saying why.")

    async def action(store: PolicyStore) -> tuple[Written, str]:
        path = state_path(store.snapshot(), strategy=strategy, symbol=symbol)
        done = await write(
            store,
            lambda: store.update(
                {path: state}, reason=reason or "", expected_version=expect_version, actor=obj.actor(by)
            ),
        )
        return done, path

    done, path = obj.run(action, live=True)
    label = _scope_label(strategy, symbol)
    verdict = _in_force(done.policy, strategy, symbol)
    facts: dict[str, Any] = {"path": path, "state": state, "in_force": verdict_json(verdict)}
    version = done.policy.version
    if not done.changed:
        text = f"No change: {label[0].lower()}{label[1:]} is already {state} (version {version})."
        obj.emit(text, done.data(**facts))
        return
    text = f"{label} is now {state} (version {version})."
    if verdict.path != path:  # a wider scope (or the kill switch) decides: say which
        text += f" In force: {in_force_text(verdict_json(verdict))}."
    obj.emit(text, done.data(**facts))
