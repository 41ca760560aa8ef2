"""The ``policystore`` command: read, change and audit the risk policy from a shell.

Reading commands live here; the audit and file commands are in
:mod:`policystore.cli.commands_audit`, the proposal commands in
:mod:`policystore.cli.commands_proposals`; the server and trading commands are
loaded only when used.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Final

import click

from policystore.cli.commands_audit import diff, export, history, import_, rollback, watch
from policystore.cli.commands_proposals import approve, proposals, propose, reject
from policystore.cli.context import CliContext, pass_cli, store_url
from policystore.cli.documents import clip, load_yaml
from policystore.cli.errors import exit_status_help
from policystore.cli.fleet_commands import fleet
from policystore.cli.fleet_wait import wait_option
from policystore.cli.group import PolicyStoreGroup
from policystore.cli.output import clipped, value_text
from policystore.cli.output_policy import render_explanation, render_preset, render_show
from policystore.cli.trading_output import fact_lines, render_trading
from policystore.cli.write_options import write_options
from policystore.cli.writes import Written, write
from policystore.errors import FieldError, PolicyValidationError, UnknownPathError
from policystore.model.modes import MODE_FIELDS, PRESETS
from policystore.model.policy import Policy
from policystore.model.roles import Role
from policystore.model.trading_view import in_force, path_facts
from policystore.redaction import redact
from policystore.store.sources import Explanation
from policystore.store.store import PolicyStore
from policystore.store.urls import DEFAULT_URL

__all__ = ["cli", "main"]

#: Commands other modules provide, imported on first use: name -> ("module:attribute", help).
LAZY_COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "serve": ("policystore.cli.server_commands:serve", "Serve the HTTP API, the change stream and the dashboard."),
    "token": ("policystore.cli.server_commands:token", "Create, list and revoke API tokens for the HTTP API."),
    "decisions": ("policystore.cli.trading_commands:decisions", "List trading decisions: why, under which version."),
    "replay": ("policystore.cli.trading_commands:replay", "Replay signals under the store's policy, per mode."),
    "trading": (
        "policystore.cli.commands_trading:trading",
        "Set the trading state of the firm, a strategy or an instrument.",
    ),
}


@click.group(
    cls=PolicyStoreGroup,
    lazy_commands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=exit_status_help(),
)
@click.option(
    "--store",
    "url",
    default=None,
    metavar="URL",
    help=f"Store URL: sqlite:///PATH, redis://HOST:PORT/DB or memory:// (env POLICYSTORE_URL; default {DEFAULT_URL}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--role",
    type=click.Choice([r.value for r in Role]),
    default=Role.ADMIN.value,
    show_default=True,
    help="Role writes are made with; file access to a store is admin access.",
)
@click.option("-v", "--verbose", is_flag=True, help="Also print the store's log messages on stderr.")
@click.version_option(package_name="policystore")
@click.pass_context
def cli(ctx: click.Context, url: str | None, as_json: bool, role: str, verbose: bool) -> None:
    """Read, change and audit the trading risk policy.

    \b
    Examples:
      policystore show
      policystore get risk.max_leverage
      policystore mode DEFENSIVE --reason "volatility spike"
      policystore set modes.NORMAL.max_leverage 4 --reason "tighter"
      policystore set modes.NORMAL.max_leverage 6 --for 2h --reason "CPI print"
      policystore history --limit 5 --json

    \b
    --store, --json and --role may also follow the command. With --json,
    results are JSON on stdout and a failure is one JSON object on stderr:
    {"error": CLASS, "detail": SENTENCE, "exit_code": N, ...facts}.
    """  # noqa: D301 - click reads \b as "keep these lines as written"; a raw string would show it
    # The store logs for long-running services; here its failures are reported as
    # one sentence instead. A NullHandler keeps Python's last-resort handler from
    # printing them, while handlers an embedding program installed still work.
    logger = logging.getLogger("policystore")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    if verbose:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    ctx.obj = CliContext(url=store_url(url), json=as_json, role=Role(role))


@cli.command(short_help="Create the store if missing; print its version.")
@pass_cli
def init(obj: CliContext) -> None:
    """Create the store if it is missing and print its version (safe to repeat).

    Every other command needs a store that exists: only init creates one.
    """

    async def action(store: PolicyStore) -> int:
        return (await store.refresh()).version

    version = obj.run(action, live=True, create=True)
    url = redact(obj.url)
    obj.emit(f"Policy store {url} is at version {version}.", {"url": url, "version": version})


@cli.command(short_help="Show the active mode, all modes, the kill switch and the trading controls.")
@pass_cli
def show(obj: CliContext) -> None:
    """Show the active mode, every mode's values side by side, the kill switch and the trading controls.

    The trading part lists the state of the firm, of each strategy and of each
    instrument with the state in force and what decided it, each instrument's
    limits in force, and the firm-wide controls. --json prints the document
    with those values in force under "effective".
    """

    async def action(store: PolicyStore) -> tuple[Policy, str, bool]:
        return store.snapshot(), store.source.value, store.stale

    policy, source, stale = obj.run(action)
    text = render_show(policy, source=source, stale=stale) + "\n\n" + render_trading(policy)
    obj.emit(text, {**policy.document(), "effective": in_force(policy)})


@cli.command(short_help="Print the value at PATH.")
@click.argument("path")
@pass_cli
def get(obj: CliContext, *, path: str) -> None:
    """Print the value at PATH (such as risk.max_leverage); see 'paths'."""

    async def action(store: PolicyStore) -> Any:
        return store.get(path)

    value = obj.run(action)
    obj.emit(value_text(value), value)


@cli.command(short_help="Tell where the value at PATH comes from.")
@click.argument("path")
@pass_cli
def explain(obj: CliContext, *, path: str) -> None:
    """Tell where the value at PATH comes from: source, version, staleness.

    For a trading path it also tells which path set the value in force (an
    instrument's own, the default's or a hard cap) and, for a state, the state
    in force and the scope that decided it (firm, kill switch, strategy,
    instrument or default).
    """

    async def action(store: PolicyStore) -> tuple[Explanation, Policy]:
        return store.explain(path), store.snapshot()

    explanation, policy = obj.run(action)
    facts = path_facts(policy, path)
    obj.emit(render_explanation(explanation, fact_lines(path, facts)), {**explanation.to_dict(), **facts})


@cli.command()
@pass_cli
def paths(obj: CliContext) -> None:
    """List every valid path, one per line."""

    async def action(store: PolicyStore) -> list[str]:
        return store.paths()

    found = obj.run(action)
    obj.emit("\n".join(found), found)


def _no_change(obj: CliContext, done: Written, what: str, **more: Any) -> None:
    obj.emit(f"No change: {what} (version {done.policy.version}).", done.data(**more))


@cli.command(short_help="Print the active mode, or switch to mode NAME.")
@click.argument("name", required=False)
@write_options(reason_required=False)
@wait_option
@pass_cli
def mode(obj: CliContext, *, name: str | None, by: str, reason: str | None, expect_version: int | None) -> None:
    """Print the active mode, or switch to mode NAME (needs --reason)."""
    if name is None:

        async def current(store: PolicyStore) -> tuple[str, int]:
            policy = store.snapshot()
            return policy.active_mode, policy.version

        active, version = obj.run(current)
        obj.emit(active, {"active_mode": active, "version": version})
        return
    reason = _require_reason(obj, reason, "switching the mode")
    expires_in = obj.lifetime()

    async def switch(store: PolicyStore) -> Written:
        return await write(
            store,
            lambda: store.switch_mode(
                name, reason=reason, expected_version=expect_version, actor=obj.actor(by), expires_in=expires_in
            ),
        )

    done = obj.run(switch, live=True)
    if not done.changed:
        _no_change(obj, done, f"mode {name} is already active")
        return
    obj.emit(f"Active mode is now {name}{done.until} (version {done.policy.version}).", done.data())


def _strategy_paths(path: str, value: Any) -> list[str]:
    """The strategy fields a ``set`` of ``path`` to ``value`` may have written."""
    head, _, rest = path.partition(".")
    name, _, field = rest.partition(".")
    if head != "strategies" or not name:
        return []
    if field:
        return [path]
    return [f"strategies.{name}.{key}" for key in value] if isinstance(value, dict) else []


def _clamp_notes(store: PolicyStore, paths: list[str]) -> list[str]:
    """The notes of ``explain`` for each path whose stored override the active mode overrules."""
    notes = []
    for path in paths:
        try:
            explanation = store.explain(path)
        except UnknownPathError:  # a key the model ignores or refused: nothing is stored there
            continue
        if explanation.clamped_by:
            detail = explanation.detail.removeprefix(_LIVE_DETAIL)
            notes.append(f"{path}: {detail}.")
    return notes


#: How explain() starts the detail of an answer from the live store; the note drops it.
_LIVE_DETAIL: Final = "read from the live store; "


@cli.command(
    name="set",
    short_help="Set PATH to VALUE (validated first).",
    # so that a negative VALUE such as -1 is a value, not an unknown option
    context_settings={"ignore_unknown_options": True},
)
@click.argument("path")
@click.argument("value")
@write_options()
@wait_option
@pass_cli
def set_(obj: CliContext, *, path: str, value: str, by: str, reason: str, expect_version: int | None) -> None:
    """Set PATH to VALUE (YAML: 4, 0.5, true, null, {...}); validated before it is written.

    A strategy override looser than the active mode is stored (it binds once a
    looser mode is active) and the mode's value applies meanwhile: set says so.

    With --for DURATION the value holds until then, and every process returns
    to the value from before at that moment; 'policystore get overrides' lists
    the changes that expire.
    """
    parsed = load_yaml(value, where=path, what=f"the value {clip(value)}")
    expires_in = obj.lifetime()

    async def action(store: PolicyStore) -> tuple[Written, list[str]]:
        done = await write(
            store,
            lambda: store.update(
                {path: parsed},
                reason=reason,
                expected_version=expect_version,
                actor=obj.actor(by),
                expires_in=expires_in,
            ),
        )
        return done, _clamp_notes(store, _strategy_paths(path, parsed))

    done, notes = obj.run(action, live=True)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if not done.changed:
        _no_change(obj, done, f"{path} is already {_shown(parsed)}", notes=notes)
        return
    obj.emit(f"Set {path} to {_shown(parsed)}{done.until} (version {done.policy.version}).", done.data(notes=notes))


def _shown(value: Any) -> str:
    return clipped(value_text(value), _SHOWN_VALUE)


#: The longest a value is written out in a one-line answer.
_SHOWN_VALUE: Final = 80


@cli.command(short_help="Turn the kill switch on or off.")
@click.argument("state", type=click.Choice(["on", "off"]))
@write_options()
@wait_option
@pass_cli
def emergency(obj: CliContext, *, state: str, by: str, reason: str, expect_version: int | None) -> None:
    """Turn the kill switch on (no new trades) or off (admins only).

    With --for, the kill switch returns to its earlier state at the end; turning
    it on for a while needs an admin, since its end turns it off.
    """
    active = state == "on"
    expires_in = obj.lifetime()

    async def action(store: PolicyStore) -> Written:
        return await write(
            store,
            lambda: store.set_emergency_mode(
                active, reason=reason, expected_version=expect_version, actor=obj.actor(by), expires_in=expires_in
            ),
        )

    done = obj.run(action, live=True)
    if not done.changed:
        _no_change(obj, done, f"the kill switch is already {state.upper()}")
        return
    obj.emit(f"Kill switch is {state.upper()}{done.until} (version {done.policy.version}).", done.data())


@cli.command(short_help="List ready-made modes; --add one to the policy.")
@click.argument("name", required=False, type=click.Choice(sorted(PRESETS)))
@click.option("--add", is_flag=True, help="Add preset NAME to the policy as a mode of that name.")
@click.option("--replace", is_flag=True, help="With --add: overwrite a mode of that name whose values differ.")
@write_options(expect_version=True, reason_required=False)
@wait_option
@pass_cli
def presets(
    obj: CliContext,
    *,
    name: str | None,
    add: bool,
    replace: bool,
    by: str,
    reason: str | None,
    expect_version: int | None,
) -> None:
    """List the ready-made modes with the reasoning behind their values; --add one to the policy.

    \b
    Adding a preset makes it a mode of the same name; switch to it with
    'policystore mode NAME'. A mode of that name that holds other values (edited
    since it was added) is kept unless --replace is given; adding the same
    values again changes nothing.
    """  # noqa: D301 - click reads \b as "keep these lines as written"
    chosen = [name] if name else sorted(PRESETS)
    if not add:
        if replace:
            raise click.UsageError("--replace goes with --add NAME.")
        data = {n: {"values": dataclasses.asdict(PRESETS[n][0]), "reason": PRESETS[n][1]} for n in chosen}
        obj.emit("\n\n".join(render_preset(*PRESETS[n]) for n in chosen), data)
        return
    if name is None:
        raise click.UsageError("--add needs the NAME of the preset to add.")
    reason = _require_reason(obj, reason, "adding a preset")
    values = dataclasses.asdict(PRESETS[name][0])
    expires_in = obj.lifetime()

    async def action(store: PolicyStore) -> Written:
        held = (await store.refresh()).modes.get(name)
        if held is not None and dataclasses.asdict(held) != values and not replace:
            differing = [f for f in MODE_FIELDS if getattr(held, f) != values[f]]
            msg = (
                f"mode {name} exists and differs from the preset in {', '.join(differing)}; "
                "it is kept (pass --replace to overwrite it with the preset)"
            )
            raise PolicyValidationError([FieldError(f"modes.{name}", msg)])
        return await write(
            store,
            lambda: store.update(
                {f"modes.{name}": values},
                reason=reason,
                expected_version=expect_version,
                actor=obj.actor(by),
                expires_in=expires_in,
            ),
        )

    done = obj.run(action, live=True)
    if not done.changed:
        _no_change(obj, done, f"mode {name} already holds the values of preset {name}")
        return
    obj.emit(
        f"Added mode {name}{done.until} (version {done.policy.version}); switch with 'policystore mode {name}'.",
        done.data(),
    )


def _require_reason(obj: CliContext, reason: str | None, action: str) -> str:
    if obj.dry_run and reason is None:
        return ""  # a preview records nothing
    if reason is None or not reason.strip():
        raise click.UsageError(f"{action[0].upper()}{action[1:]} needs --reason TEXT saying why.")
    return reason


for _command in (history, diff, rollback, watch, export, import_, fleet, propose, proposals, approve, reject):
    cli.add_command(_command)


def main() -> None:
    """Run the command line (the ``policystore`` console script)."""
    cli.main(prog_name="policystore", auto_envvar_prefix=None)


if __name__ == "__main__":  # pragma: no cover - exercised through subprocesses
    main()
