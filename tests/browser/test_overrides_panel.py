"""The dashboard's panel of expiring changes, in real headless Chromium against a real server.

It lists each change in force with what it set, what it returns to, who and
why, and a countdown; at the end the page shows the values from before.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from browser.test_dashboard import _api, _shot, _sign_in, browser, live, output_dir, page  # noqa: F401 - fixtures
from server.live_server import LiveServer

pytestmark = pytest.mark.browser


class TestOverridesPanel:
    """What a viewer sees of changes that expire."""

    def test_no_panel_without_expiring_changes(self, live: LiveServer, page: Page) -> None:  # noqa: F811 - fixtures
        """A policy that holds none shows no panel."""
        _sign_in(page, live, "viewer")
        expect(page.locator("#overrides-panel")).to_be_hidden()

    def test_a_change_counts_down_and_its_values_return_at_the_end(
        self,
        live: LiveServer,  # noqa: F811 - fixture
        page: Page,  # noqa: F811 - fixture
        output_dir: Path,  # noqa: F811 - fixture
    ) -> None:
        """Two changes listed with countdowns; the short one ends and the page shows the value from before."""
        _api(
            live,
            "PATCH",
            "/v1/policy",
            {"changes": {"modes.DEFENSIVE.max_positions": 8}, "reason": "fewer", "expires_in": 3600},
            role="operator",
        )
        _sign_in(page, live, "viewer")
        _api(
            live,
            "PATCH",
            "/v1/policy",
            {"changes": {"modes.NORMAL.max_leverage": 7.0}, "reason": "CPI print", "expires_in": 4},
        )
        rows = page.locator("#overrides tbody tr")
        expect(rows).to_have_count(2)
        short = page.locator("#overrides tbody tr[data-version='3']")
        expect(short).to_contain_text("modes.NORMAL.max_leverage")
        expect(short).to_contain_text("7.0\u00d7")
        expect(short).to_contain_text("returns to 5.0\u00d7")
        expect(short).to_contain_text("v3 by ada-admin")
        expect(short).to_contain_text("CPI print")
        expect(short.locator("td.left")).to_have_text(re.compile(r"^0:0[0-4]$"))
        long = page.locator("#overrides tbody tr[data-version='2']")
        expect(long.locator("td.left")).to_have_text(re.compile(r"^(59:\d\d|1:00:00)$"))
        expect(long).to_contain_text("returns to 10")
        expect(page.locator('#limits td[data-mode="NORMAL"][data-field="max_leverage"]')).to_have_text("7.0\u00d7")
        _shot(page, output_dir, "overrides-panel")
        # The end: the page asks for the policy again and shows the value in force, and the short row is gone.
        expect(page.locator('#limits td[data-mode="NORMAL"][data-field="max_leverage"]')).to_have_text(
            "5.0\u00d7", timeout=20000
        )
        expect(rows).to_have_count(1)
        expect(long).to_be_visible()
