"""Audit and file commands: ``history``, ``diff``, ``rollback``, ``watch``, ``export``, ``import``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import yaml

from policystore.cli.context import CliContext, pass_cli, repairable
from policystore.cli.documents import read_document
from policystore.cli.fleet_wait import wait_option
from policystore.cli.output import to_json
from policystore.cli.output_audit import render_diff, render_event, render_history, render_history_full
from policystore.cli.write_options import write_options
from policystore.cli.writes import Written, write
from policystore.model.events import EventType, PolicyChanged
from policystore.model.history import FieldChange, HistoryEntry
from policystore.store.store import PolicyStore

__all__ = ["diff", "export", "history", "import_", "rollback", "watch"]

_FORMATS = ("yaml", "json")


@click.command(short_help="List changes, newest first.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, metavar="N", help="Show at most N entries."
)
@click.option("--full", is_flag=True, help="List every changed field of each entry, one per line.")
@pass_cli
def history(obj: CliContext, *, limit: int, full: bool) -> None:
    """List the newest changes first: version, when, who, why and what changed.

    Each row shows the changes that matter first (the kill switch's state and
    reason, the mode, then limits; the stamps the store sets last) and counts
    those that do not fit; --full lists them all, and --json gives them as data.
    """

    async def action(store: PolicyStore) -> tuple[list[HistoryEntry], int | None]:
        # The newest version, refused as invalid, is listed as stored and marked (it is how one learns
        # who wrote it, and which version to roll back to).
        invalid = await store.backend.current_version() if repairable(store.last_error) else None
        return await store.history(limit=limit), invalid

    entries, invalid = obj.run(action, live=True, audits=True)
    text = render_history_full(entries, invalid=invalid) if full else render_history(entries, invalid=invalid)
    obj.emit(text, [e.to_dict() | ({"invalid": True} if e.version == invalid else {}) for e in entries])


@click.command(short_help="Show what differs between two versions.")
@click.argument("v1", type=click.IntRange(min=1))
@click.argument("v2", type=click.IntRange(min=1), required=False)
@pass_cli
def diff(obj: CliContext, *, v1: int, v2: int | None) -> None:
    """Show the fields that differ from version V1 to V2 (default: the current version)."""

    async def action(store: PolicyStore) -> tuple[list[FieldChange], int]:
        changes = await store.diff(v1, v2)
        return changes, v2 if v2 is not None else (await store.refresh()).version

    changes, newer = obj.run(action, live=True)
    obj.emit(render_diff(changes, v1, newer), [c.to_dict() for c in changes])


@click.command(short_help="Restore an old version as a new one.")
@click.argument("version", type=click.IntRange(min=1))
@write_options(lifetime=False)
@wait_option
@pass_cli
def rollback(obj: CliContext, *, version: int, by: str, reason: str, expect_version: int | None) -> None:
    """Write a new version equal in content to VERSION (admins only)."""

    async def action(store: PolicyStore) -> Written:
        return await write(
            store,
            lambda: store.rollback(version, reason=reason, expected_version=expect_version, actor=obj.actor(by)),
        )

    # Works over an invalid newest version: restoring a good one is how such a store is repaired.
    done = obj.run(action, live=True, repairs=True)
    now = done.policy.version
    if not done.changed:
        obj.emit(f"No change: version {now} already has the content of version {version}.", done.data())
        return
    obj.emit(f"Rolled back to the content of version {version} as version {now}.", done.data())


@click.command(short_help="Print each change as it happens.")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N", help="Stop after N events.")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice([t.value for t in EventType]),
    help="Print only events of this kind (repeatable); by default each change once, as policy.updated.",
)
@pass_cli
def watch(obj: CliContext, *, count: int | None, types: tuple[str, ...]) -> None:
    """Print each change as it happens (one JSON object per line with --json) until Ctrl-C.

    One change is one line: its policy.updated event, which names every field
    it changed (and policy.rejected when the store holds a version that fails
    validation). --type asks for particular kinds instead, such as
    --type policy.emergency for the kill switch alone.
    """

    async def action(store: PolicyStore) -> None:
        queue: asyncio.Queue[PolicyChanged] = asyncio.Queue()
        # subscribe() registers at once, so no change made after the line below is missed.
        unsubscribe = store.subscribe(queue.put_nowait, types=types or None)
        version = store.snapshot().version
        click.echo(f"Watching {store.url} from version {version}; press Ctrl-C to stop.", err=True)
        try:
            seen = 0
            while count is None or seen < count:
                event = await queue.get()
                click.echo(to_json(event.to_dict(), indent=None) if obj.json else render_event(event))
                seen += 1
        finally:
            unsubscribe()

    try:
        obj.run(action, watch=True)
    except KeyboardInterrupt:
        click.echo("Stopped.", err=True)


def _format(file: str, chosen: str | None, *, as_json: bool) -> str:
    if chosen:
        return chosen
    suffix = Path(file).suffix.lower()
    if file == "-":
        return "json" if as_json else "yaml"
    if suffix == ".json":
        return "json"
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    msg = f"Cannot tell the format of {file!r} from its extension; use .yaml, .yml or .json, or --format."
    raise click.UsageError(msg)


_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(_FORMATS),
    default=None,
    help="File format; by default from the extension (.json, .yaml/.yml).",
)


@click.command(short_help="Write the whole policy to a YAML or JSON file.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@_format_option
@pass_cli
def export(obj: CliContext, *, file: str, fmt: str | None) -> None:
    """Write the whole policy to FILE as YAML or JSON ('-' for stdout)."""
    kind = _format(file, fmt, as_json=obj.json)

    async def action(store: PolicyStore) -> dict[str, Any]:
        return store.snapshot().document()

    document = obj.run(action)
    text = to_json(document) + "\n" if kind == "json" else yaml.safe_dump(document, sort_keys=False)
    if file == "-":
        click.echo(text, nl=False)
        return
    try:
        Path(file).write_text(text, encoding="utf-8")
    except OSError as exc:
        # A path that cannot be written is a bad argument, as click's own file checks treat one (exit 2).
        raise click.UsageError(f"Cannot write {file}: {_os_reason(exc)}.") from exc
    click.echo(f"Exported version {document['version']} to {file}.", err=obj.json)


def _os_reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _read_document(file: str, kind: str) -> dict[str, Any]:
    try:
        return read_document(file, kind)
    except OSError as exc:
        # Same class of mistake as a missing file, which click already refuses with exit 2.
        raise click.UsageError(f"Cannot read {file}: {_os_reason(exc)}.") from exc


@click.command(name="import", short_help="Replace the policy with a YAML or JSON file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@_format_option
@write_options(lifetime=False)
@wait_option
@pass_cli
def import_(obj: CliContext, *, file: str, fmt: str | None, by: str, reason: str, expect_version: int | None) -> None:
    """Replace the whole policy with FILE (YAML or JSON) as one new version; an invalid file changes nothing.

    Works over an invalid newest version, which it replaces. Importing a file
    equal to the current policy (an export of it) changes nothing.
    """
    document = _read_document(file, _format(file, fmt, as_json=False))

    async def action(store: PolicyStore) -> Written:
        return await write(
            store,
            lambda: store.replace_policy(document, reason=reason, expected_version=expect_version, actor=obj.actor(by)),
        )

    done = obj.run(action, live=True, repairs=True)
    if not done.changed:
        obj.emit(f"No change: {file} holds the policy of version {done.policy.version}.", done.data())
        return
    obj.emit(f"Imported {file} as version {done.policy.version}.", done.data())
