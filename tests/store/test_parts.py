"""The store's parts and the small helpers they share: one atomic file write, one callback call, one local author."""

from __future__ import annotations

import asyncio
import getpass
import uuid
from pathlib import Path

import pytest

from policystore import PolicyStore
from policystore._callbacks import call_sync_or_async
from policystore._files import replace_file
from policystore.store.identity import default_actor, local_author


class TestReplaceFile:
    """A file replaced through ``replace_file`` is the old one or the new one, never a part."""

    @pytest.mark.parametrize("durable", [False, True])
    def test_replace_file_writes_whole_text_and_leaves_no_temporary_file(self, tmp_path: Path, durable: bool) -> None:
        """The file holds exactly the new text, and the folder holds nothing else."""
        target = tmp_path / "table.json"
        target.write_text("old", encoding="utf-8")
        replace_file(target, '{"new": true}', durable=durable)
        assert '{"new": true}' == target.read_text(encoding="utf-8")
        assert ["table.json"] == [p.name for p in tmp_path.iterdir()]

    def test_failed_replace_keeps_old_file_and_removes_temporary_file(self, tmp_path: Path) -> None:
        """Text that cannot be written (a lone surrogate is no UTF-8) leaves the old file as it was."""
        target = tmp_path / "table.json"
        target.write_text("old", encoding="utf-8")
        with pytest.raises(UnicodeEncodeError):
            replace_file(target, "\ud800")
        assert "old" == target.read_text(encoding="utf-8")
        assert ["table.json"] == [p.name for p in tmp_path.iterdir()]


class TestCallSyncOrAsync:
    """One call for callbacks that may be plain functions or coroutine functions."""

    async def test_plain_function_called_with_arguments(self) -> None:
        """A plain function is called once with the arguments given."""
        calls: list[tuple[int, str]] = []
        await call_sync_or_async(lambda n, s: calls.append((n, s)), 1, "a")
        assert [(1, "a")] == calls

    async def test_coroutine_function_awaited_before_returning(self) -> None:
        """A coroutine function has run to its end when the call returns."""
        calls: list[str] = []

        async def slow(word: str) -> None:
            await asyncio.sleep(0)
            calls.append(word)

        await call_sync_or_async(slow, "done")
        assert ["done"] == calls


class TestLocalAuthor:
    """Who writes when no one is named: the local user, as an admin."""

    def test_local_author_names_the_user(self) -> None:
        """The author is ``local:`` and the system's name for the user."""
        assert f"local:{getpass.getuser()}" == local_author()

    def test_unnamed_user_writes_as_unknown(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With no passwd entry (as in some containers), the author is ``local:unknown``."""

        def no_entry() -> str:
            raise KeyError("getpwuid(): uid not found: 4242")

        monkeypatch.setattr(getpass, "getuser", no_entry)
        assert "local:unknown" == local_author()
        assert ("local:unknown", "admin") == (default_actor().name, default_actor().role.value)


class TestReadPath:
    """``get`` is one lookup in a table that is the read state's own, whichever part installed it."""

    async def test_values_table_is_read_state_table_after_each_install(self) -> None:
        """After a write and after a catch-up with another writer, the table get() reads is the state's."""
        url = f"memory://parts-{uuid.uuid4().hex}"
        writer = await PolicyStore.open(url, lkg_path=None, watch=False)
        reader = await PolicyStore.open(url, lkg_path=None, watch=False)
        try:
            await writer.switch_mode("DEFENSIVE", reason="calm")
            assert writer._values is writer._state.values
            assert "DEFENSIVE" == writer.get("active_mode")
            await reader.refresh()
            assert reader._values is reader._state.values
            assert (2, "DEFENSIVE") == (reader.get("version"), reader.get("active_mode"))
        finally:
            await reader.close()
            await writer.close()
