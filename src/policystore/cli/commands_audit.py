"""Audit and file commands: ``history``, ``diff``, ``rollback``, ``watch``, ``export``, ``import``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from policystore.cli.context import CliContext, write_options
from policystore.cli.output import render_diff, render_event, render_history, to_json
from policystore.errors import FieldError, PolicyValidationError
from policystore.model.events import PolicyChanged
from policystore.model.history import FieldChange, HistoryEntry
from policystore.store.store import PolicyStore

__all__ = ["diff", "export", "history", "import_", "rollback", "watch"]

pass_cli = click.make_pass_decorator(CliContext)

_FORMATS = ("yaml", "json")


@click.command(short_help="List changes, newest first.")
@click.option(
    "--limit", type=click.IntRange(min=1), default=20, show_default=True, metavar="N", help="Show at most N entries."
)
@pass_cli
def history(obj: CliContext, *, limit: int) -> None:
    """List the newest changes first: version, when, who, why and what changed."""

    async def action(store: PolicyStore) -> list[HistoryEntry]:
        return await store.history(limit=limit)

    entries = obj.run(action, live=True)
    obj.emit(render_history(entries), [e.to_dict() for e in entries])


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
@write_options()
@pass_cli
def rollback(obj: CliContext, *, version: int, by: str, reason: str, expect_version: int | None) -> None:
    """Write a new version equal in content to VERSION (admins only)."""

    async def action(store: PolicyStore) -> dict[str, Any]:
        policy = await store.rollback(version, reason=reason, expected_version=expect_version, actor=obj.actor(by))
        return policy.document()

    document = obj.run(action, live=True)
    obj.emit(f"Rolled back to the content of version {version} as version {document['version']}.", document)


@click.command(short_help="Print each change as it happens.")
@click.option("--count", type=click.IntRange(min=1), default=None, metavar="N", help="Stop after N events.")
@pass_cli
def watch(obj: CliContext, *, count: int | None) -> None:
    """Print every change event as it happens (one JSON object per line with --json) until Ctrl-C."""

    async def action(store: PolicyStore) -> None:
        queue: asyncio.Queue[PolicyChanged] = asyncio.Queue()
        # subscribe() registers at once, so no change made after the line below is missed.
        unsubscribe = store.subscribe(queue.put_nowait)
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


def _read_text(file: str) -> str:
    try:
        return sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        # Same class of mistake as a missing file, which click already refuses with exit 2.
        raise click.UsageError(f"Cannot read {file}: {_os_reason(exc)}.") from exc
    except UnicodeDecodeError as exc:
        # The file is there but its content is no policy document: an invalid value (exit 3),
        # like a file that is not valid YAML or JSON.
        msg = f"{file} is not UTF-8 text (byte {exc.start} cannot be decoded)"
        raise PolicyValidationError([FieldError("file", msg)]) from exc


def _read_document(file: str, kind: str) -> dict[str, Any]:
    text = _read_text(file)
    try:
        data = json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        problem = " ".join(str(exc).split())
        raise PolicyValidationError([FieldError("file", f"{file} is not valid {kind.upper()} ({problem})")]) from exc
    if not isinstance(data, dict):
        msg = f"{file} holds no policy document (expected a mapping, found {type(data).__name__})"
        raise PolicyValidationError([FieldError("file", msg)])
    return data


@click.command(name="import", short_help="Replace the policy with a YAML or JSON file.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@_format_option
@write_options()
@pass_cli
def import_(obj: CliContext, *, file: str, fmt: str | None, by: str, reason: str, expect_version: int | None) -> None:
    """Replace the whole policy with FILE (YAML or JSON) as one new version; an invalid file changes nothing."""
    document = _read_document(file, _format(file, fmt, as_json=False))

    async def action(store: PolicyStore) -> dict[str, Any]:
        policy = await store.replace_policy(
            document, reason=reason, expected_version=expect_version, actor=obj.actor(by)
        )
        return policy.document()

    written = obj.run(action, live=True)
    obj.emit(f"Imported {file} as version {written['version']}.", written)
