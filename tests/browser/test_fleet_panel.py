"""The dashboard's fleet panel and the kill switch's wait for the fleet, in headless Chromium.

A real server on SQLite and real member processes: the panel lists them with
their versions; a member frozen (SIGSTOP) before the kill switch is named as
not having confirmed it; a member killed (SIGKILL) turns lost, in red.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from test_dashboard import _confirm, _shot, _sign_in, browser, output_dir, page  # noqa: F401 - fixtures reused

from server.live_server import LiveServer
from support.fleet import Member, members

pytestmark = pytest.mark.browser

#: Patience for what takes the fleet seconds by design: a member is lost after 5 s unheard.
LOST_PATIENCE_MS = 20_000


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", name="desk-server").start()
    yield server
    server.stop()


@pytest.fixture
def fleet(live: LiveServer) -> Iterator[list[Member]]:
    """Two trading processes following the server's store."""
    assert isinstance(live.url, str)
    with members(live.url, "executor-1", "executor-2") as started:
        yield started


def _freeze_when_heard(live: LiveServer, member: Member) -> None:
    """Freeze ``member`` just after it reported, so it stays live (and behind) for the kill switch's 3 s wait."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = httpx.get(f"{live.base}/v1/fleet", headers=live.headers("viewer"), timeout=10).json()
        listed = {m["name"]: m for m in body["members"]}
        if member.name in listed and listed[member.name]["lag_seconds"] < 0.5:
            member.freeze()
            return
        time.sleep(0.05)
    pytest.fail(f"{member.name} did not report")


def _row(view: Page, name: str):
    return view.locator(f'#fleet tbody tr[data-name="{name}"]')


class TestFleetPanel:
    def test_panel_lists_every_process_and_the_kill_switch_is_confirmed_by_all(
        self,
        live,
        fleet,
        page,  # noqa: F811 - the fixture of test_dashboard
        output_dir,  # noqa: F811 - the fixture of test_dashboard
    ) -> None:
        """The server and both executors are live at v1; the kill switch waits and says all 3 confirmed it."""
        _sign_in(page, live, "admin")
        expect(page.locator("#fleet tbody tr")).to_have_count(3)
        for name in ("desk-server", "executor-1", "executor-2"):
            expect(_row(page, name).locator("td.status")).to_have_text("live")
            expect(_row(page, name).locator("td.version")).to_have_text("1")
        expect(_row(page, "executor-1").locator("td.num").first).to_have_text(str(fleet[0].pid))
        expect(page.locator("#fleet-summary")).to_contain_text("3 live · 0 lost · 0 behind")

        page.click("#kill-toggle")
        expect(page.locator("#confirm-text")).to_contain_text("wait up to 3 s for every trading process")
        _confirm(page, "exchange outage")

        expect(page.locator("#kill-fleet")).to_contain_text("v2 confirmed by all 3 live processes")
        expect(page.locator("#kill-fleet")).to_have_class("small fleet-ack ok")
        expect(page.locator("#toast")).to_contain_text("Activate kill switch: done (version 2); confirmed by all 3")
        for name in ("desk-server", "executor-1", "executor-2"):
            expect(_row(page, name).locator("td.version")).to_have_text("2")
        _shot(page, output_dir, "fleet-confirmed")

    def test_kill_switch_names_a_frozen_process_and_a_killed_one_turns_lost_in_red(
        self,
        live,
        fleet,
        page,  # noqa: F811 - the fixture of test_dashboard
        output_dir,  # noqa: F811 - the fixture of test_dashboard
    ) -> None:
        """An operator's kill switch: executor-2, frozen, is named as not confirmed; killed, its row is LOST in red."""
        running, frozen = fleet
        _sign_in(page, live, "operator")
        expect(page.locator("#fleet tbody tr")).to_have_count(3)
        _freeze_when_heard(live, frozen)
        try:
            page.click("#kill-toggle")
            _confirm(page, "exchange outage")

            ack = page.locator("#kill-fleet")
            expect(ack).to_contain_text("NOT confirmed by 1 of 3 live processes", timeout=LOST_PATIENCE_MS)
            expect(ack).to_contain_text(f"executor-2 (pid {frozen.pid} on ")
            expect(ack).to_contain_text("at v1")
            expect(ack).not_to_contain_text("executor-1")
            expect(ack).to_have_class("small fleet-ack refused")
            expect(page.locator("#toast")).to_contain_text("NOT confirmed by 1 of 3")
            expect(_row(page, "executor-2").locator("td.lag")).to_have_text("1 behind")
            expect(_row(page, "executor-1").locator("td.version")).to_have_text("2")
            _shot(page, output_dir, "fleet-not-confirmed")
        finally:
            frozen.kill()

        lost = _row(page, "executor-2")
        expect(lost).to_have_attribute("data-status", "lost", timeout=LOST_PATIENCE_MS)
        expect(lost.locator("td.status")).to_have_text("LOST")
        expect(lost).to_have_class("lost")
        assert "rgb(248, 81, 73)" == lost.locator("td.status").evaluate("cell => getComputedStyle(cell).color")
        expect(page.locator("#fleet-summary")).to_contain_text("2 live · 1 lost")
        expect(_row(page, running.name).locator("td.status")).to_have_text("live")
        _shot(page, output_dir, "fleet-lost")
