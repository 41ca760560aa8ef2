"""The proposals panel and the previewing confirm dialogs in headless Chromium, with two admin tokens.

ada-admin's looser mode switch is proposed from the confirm dialog (the
preview says two admins must agree); bea-admin sees it in the Proposals panel
with what it would change and approves it, and it applies as one version.
"""

# ruff: noqa: F811 - the dashboard tests' fixtures (browser, page, output_dir) are imported to be used by name

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.test_dashboard import _api, _shot, _sign_in, browser, output_dir, page  # noqa: F401 - fixtures
from server.live_server import LiveServer

pytestmark = pytest.mark.browser

LOOSER_MODE = "AGGRESSIVE_SMALL_ACCOUNT"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    """A live server with a second admin (bea-admin) and change_control.approvals_required raised to 2."""
    server = LiveServer(f"sqlite:///{tmp_path}/policy.db", decisions=_sample_log(tmp_path)).start()
    server.add_token("admin2", "bea-admin", "admin")
    _api(
        server,
        "PATCH",
        "/v1/policy",
        {"changes": {"change_control.approvals_required": 2}, "reason": "four eyes"},
        role="operator",
    )
    yield server
    server.stop()


def _sample_log(tmp_path: Path) -> Path:
    """A decision log of the shipped sample signals replayed under the built-in policy."""
    from policystore.consumers.decision_log import JsonlDecisionLog
    from policystore.consumers.replay import load_prices, load_signals, replay_mode, sample_paths

    signals_csv, prices_csv = sample_paths()
    replayed = replay_mode("NORMAL", load_signals(signals_csv), load_prices(prices_csv))
    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        result = thread.submit(asyncio.run, replayed).result()
    path = tmp_path / "decisions.jsonl"
    with JsonlDecisionLog(path, sync_every=1000) as log:
        for decision in result.decisions:
            log.record(decision)
    return path


def _sign_in_as(page: Page, live: LiveServer, key: str) -> None:
    _sign_in(page, live, key)


class TestProposalsPanel:
    """Proposed by one admin from the dialog, approved by another in the panel."""

    def test_second_admin_approves_from_the_panel_and_it_applies_naming_both(
        self, live: LiveServer, browser: Browser, page: Page, output_dir: Path
    ) -> None:
        """ada proposes the looser mode; bea sees it with its preview, approves; both see the new mode."""
        _sign_in_as(page, live, "admin")
        looser = page.locator(f'#mode-buttons button[data-mode="{LOOSER_MODE}"]')
        expect(looser).to_contain_text("2 admins")

        looser.click()

        expect(page.locator("#confirm-allowed")).to_contain_text("2 admins must agree")
        expect(page.locator("#confirm-ok")).to_have_text("Propose")
        expect(page.locator('#confirm-changes tr[data-path="risk.max_leverage"]')).to_contain_text("raises risk")
        expect(page.locator("#confirm-decisions")).to_contain_text("Decision log: of 117 recorded signals")
        _shot(page, output_dir, "proposal-dialog")
        page.fill("#confirm-reason", "event window")
        page.click("#confirm-ok")
        expect(page.locator("#toast")).to_contain_text("proposed as")
        card = page.locator("#proposals .proposal")
        expect(card).to_contain_text("1 of 2 approvals (ada-admin)")
        expect(card.locator("button.approve")).to_be_disabled()
        expect(card.locator("button.approve")).to_have_text("Approved by you")

        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        second = context.new_page()
        try:
            _sign_in_as(second, live, "admin2")
            other = second.locator("#proposals .proposal")
            expect(other).to_contain_text("What approving it would change now:")
            expect(other.locator('tr[data-path="risk.max_leverage"]')).to_contain_text("7.0\u00d7")
            expect(other.locator("button.approve")).to_be_enabled()
            _shot(second, output_dir, "proposals-panel")

            other.locator("button.approve").click()

            expect(second.locator("#active-mode")).to_have_text(LOOSER_MODE)
            expect(second.locator("#proposals")).to_contain_text("No pending proposals.")
            top = second.locator("#history tbody tr").first
            expect(top).to_contain_text("ada-admin")
            expect(top).to_contain_text("approved by ada-admin, bea-admin")
        finally:
            context.close()
        expect(page.locator("#active-mode")).to_have_text(LOOSER_MODE)
        expect(page.locator("#version")).to_have_text("3")

    def test_proposer_may_withdraw_and_panel_lists_it_as_decided(self, live: LiveServer, page: Page) -> None:
        """The reason box and Reject button take a proposal away; it is listed as rejected."""
        _api(live, "POST", "/v1/proposals", {"changes": {"modes.NORMAL.max_leverage": 6.0}, "reason": "event"})
        _sign_in_as(page, live, "admin2")
        card = page.locator("#proposals .proposal")
        expect(card).to_contain_text("by ada-admin: event")

        card.locator(".reject-reason").fill("not today")
        card.locator("button.reject").click()

        expect(page.locator("#proposals")).to_contain_text("No pending proposals.")
        expect(page.locator("#proposals ul.decided")).to_contain_text("rejected")


class TestDialogOrder:
    """The reason is typed after the preview, never before."""

    def test_reason_box_opens_only_once_the_preview_is_shown(self, live: LiveServer, page: Page) -> None:
        """A tightening's dialog: the preview rows are there when the reason box can take text."""
        _sign_in_as(page, live, "operator")

        page.click('#mode-buttons button[data-mode="DEFENSIVE"]')

        expect(page.locator("#confirm-reason")).to_be_enabled()
        expect(page.locator('#confirm-changes tr[data-path="risk.max_leverage"]')).to_contain_text("3.0\u00d7")
        expect(page.locator("#confirm-allowed")).to_contain_text("may make this change")

    def test_operator_may_propose_a_loosening_from_the_dialog(self, live: LiveServer, page: Page) -> None:
        """An operator's looser mode under 2 approvals: the dialog offers to propose it."""
        _sign_in_as(page, live, "operator")

        page.click(f'#mode-buttons button[data-mode="{LOOSER_MODE}"]')

        expect(page.locator("#confirm-allowed")).to_contain_text("2 admins must agree")
        expect(page.locator("#confirm-ok")).to_have_text("Propose")
        expect(page.locator("#confirm-reason")).to_be_enabled()
        page.click("#confirm-cancel")

    def test_refused_preview_keeps_the_reason_box_closed(self, live: LiveServer, page: Page) -> None:
        """A rollback that needs two admins cannot be proposed from the dialog: no reason box, no Confirm."""
        _sign_in_as(page, live, "admin")

        page.click('#history button.rollback[data-version="1"]')

        expect(page.locator("#confirm-allowed")).to_contain_text("may not make this change")
        expect(page.locator('#confirm-changes tr[data-path="change_control.approvals_required"]')).to_contain_text(
            "raises risk"
        )
        expect(page.locator("#confirm-reason")).to_be_disabled()
        expect(page.locator("#confirm-ok")).to_be_disabled()
