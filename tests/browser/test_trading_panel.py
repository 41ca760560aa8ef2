"""The dashboard's trading panel in real headless Chromium against a real server.

The firm state as a banner beside the kill switch's, the states of every
scope with what decides them, the instrument limits with their units, and
state changes from the page within the role's authority, each previewed
before the reason is typed.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from test_dashboard import _api, _confirm, _shot, _sign_in

from server.live_server import LiveServer

pytestmark = pytest.mark.browser


def _row(page: Page, instrument: str):
    return page.locator(f'#instruments tr[data-instrument="{instrument}"]')


def _choose(page: Page, scope: str, name: str, state: str) -> None:
    page.select_option(f'select.state-select[data-scope="{scope}"][data-name="{name}"]', state)


def _desk_limits(live: LiveServer) -> None:
    """BTC with an order notional limit of its own; a default collar every instrument inherits; a firm throttle."""
    changes = {
        "instruments.BTC.max_order_notional": 10_000,
        "instruments.default.price_collar": 0.02,
        "instruments.default.max_position_notional": 250_000,
        "trading.max_orders_per_minute": 60,
        "trading.max_daily_loss": 2_500,
    }
    _api(live, "PATCH", "/v1/policy", {"changes": changes, "reason": "desk limits"})


class TestStateChangesFromThePage:
    def test_operator_halts_an_instrument_from_the_page(self, live, page, output_dir):
        """An operator picks 'halted' for BTC: the preview allows it before any reason; confirmed, BTC reads halted."""
        _desk_limits(live)
        _sign_in(page, live, "operator")

        _choose(page, "instrument", "BTC", "halted")

        expect(page.locator("#confirm-title")).to_have_text("Set instrument BTC to halted")
        expect(page.locator("#confirm-allowed")).to_contain_text("Your role (operator) may make this change.")
        change = page.locator('#confirm-changes tr[data-path="instruments.BTC.state"]')
        expect(change).to_contain_text("active")
        expect(change).to_contain_text("halted")
        expect(change).not_to_contain_text("raises risk")
        assert "" == page.input_value("#confirm-reason")
        _confirm(page, "exchange halt on BTC")

        btc = _row(page, "BTC")
        expect(btc.locator("td").nth(0)).to_have_text("halted")
        expect(btc).to_contain_text("instrument · instruments.BTC.state")
        expect(page.locator('select.state-select[data-scope="instrument"][data-name="BTC"]')).to_have_value("halted")
        expect(page.locator("#history tbody tr").first).to_contain_text("exchange halt on BTC")
        expect(page.locator("#history tbody tr").first).to_contain_text("otto-operator")
        _shot(page, output_dir, "trading-instrument-halted")

    def test_operator_cannot_loosen_and_the_page_says_so_before_a_reason(self, live, page, output_dir):
        """BTC halted: an operator choosing 'active' is told it needs an admin; Confirm stays disabled; no write."""
        _api(live, "POST", "/v1/trading", {"state": "halted", "symbol": "BTC", "reason": "exchange halt"})
        _sign_in(page, live, "operator")
        version = page.locator("#version").inner_text()

        _choose(page, "instrument", "BTC", "active")

        expect(page.locator("#confirm-allowed")).to_contain_text("Needs the admin role: your role (operator) may not")
        expect(page.locator('#confirm-changes tr[data-path="instruments.BTC.state"]')).to_contain_text("raises risk")
        expect(page.locator("#confirm-ok")).to_be_disabled()
        assert "" == page.input_value("#confirm-reason")
        _shot(page, output_dir, "trading-operator-refused")
        page.click("#confirm-cancel")

        # The selector went back to what the store holds, and no version was written.
        expect(page.locator('select.state-select[data-scope="instrument"][data-name="BTC"]')).to_have_value("halted")
        expect(page.locator("#version")).to_have_text(version)

    def test_admin_loosens_an_instrument_and_a_strategy(self, live, page):
        """An admin sets BTC and the aggressive strategy back to active, each previewed as allowed and raising risk."""
        _api(live, "POST", "/v1/trading", {"state": "halted", "symbol": "BTC", "reason": "exchange halt"})
        _api(live, "POST", "/v1/trading", {"state": "reducing", "strategy": "aggressive", "reason": "drawdown"})
        _sign_in(page, live, "admin")

        _choose(page, "instrument", "BTC", "active")
        expect(page.locator("#confirm-allowed")).to_contain_text("it raises risk, which needs an admin")
        _confirm(page, "exchange open again")
        expect(_row(page, "BTC").locator("td").nth(0)).to_have_text("active")

        _choose(page, "strategy", "aggressive", "active")
        _confirm(page, "drawdown recovered")
        strategy = page.locator('#trading-states tr[data-name="aggressive"]')
        expect(strategy.locator("td").nth(1)).to_have_text("active")
        expect(page.locator("#version")).to_have_text("5")

    def test_operator_sets_a_state_for_an_instrument_not_listed_yet(self, live, page):
        """The form takes a symbol the table lacks; the new row appears halted, with the default's limits."""
        _desk_limits(live)
        _sign_in(page, live, "operator")

        page.fill("#instrument-symbol", "ETH/USD")
        page.select_option("#instrument-state", "halted")
        page.click("#instrument-go")
        expect(page.locator("#confirm-title")).to_have_text("Set instrument ETH/USD to halted")
        _confirm(page, "no liquidity")

        eth = _row(page, "ETH/USD")
        expect(eth.locator("td").nth(0)).to_have_text("halted")
        expect(eth.locator('td[data-field="price_collar"]')).to_contain_text("2 %")
        expect(eth.locator('td[data-field="price_collar"]')).to_contain_text("default")

    def test_a_symbol_the_pattern_refuses_is_refused_in_the_dialog(self, live, page):
        """A lower-case symbol: the preview says why (the symbol pattern) and Confirm stays disabled."""
        _sign_in(page, live, "operator")

        page.fill("#instrument-symbol", "btc")
        page.click("#instrument-go")

        expect(page.locator("#confirm-allowed")).to_contain_text("would be refused")
        expect(page.locator("#confirm-allowed")).to_contain_text("upper-case")
        expect(page.locator("#confirm-ok")).to_be_disabled()


class TestFirmState:
    def test_firm_state_shows_as_a_banner_beside_the_kill_switch(self, live, page, output_dir):
        """Halting the firm from the page raises a banner; with the kill switch on too, both banners show."""
        _desk_limits(live)
        _sign_in(page, live, "operator")
        expect(page.locator(".banner.trading")).to_have_count(0)

        _choose(page, "firm", "firm", "halted")
        expect(page.locator("#confirm-title")).to_have_text("Set firm-wide trading to halted")
        _confirm(page, "market-wide circuit breaker")

        expect(page.locator(".banner.trading.halted")).to_have_text("TRADING HALTED firm-wide — no order at all.")
        firm = page.locator('#trading-states tr[data-scope="firm"]')
        expect(firm).to_contain_text("firm · trading.state")
        # Every strategy and instrument meets the firm's halt.
        expect(page.locator('#trading-states tr[data-name="moderate"]')).to_contain_text("halted")
        expect(_row(page, "default")).to_contain_text("firm · trading.state")

        page.click("#kill-toggle")
        _confirm(page, "exchange outage")
        expect(page.locator(".banner.kill")).to_be_visible()
        expect(page.locator(".banner.trading.halted")).to_be_visible()
        _shot(page, output_dir, "trading-firm-halted")

    def test_kill_switch_alone_makes_the_firm_reduce_in_force(self, live, page):
        """Kill switch on, trading.state active: no trading banner, and the firm's state in force is reducing."""
        _api(live, "POST", "/v1/emergency", {"active": True, "reason": "outage"}, role="operator")
        _sign_in(page, live, "viewer")

        firm = page.locator('#trading-states tr[data-scope="firm"]')
        expect(firm.locator("td").nth(1)).to_have_text("active")
        expect(firm.locator("td").nth(2)).to_contain_text("reducing")
        expect(firm.locator("td").nth(2)).to_contain_text("kill switch · emergency.active")
        expect(page.locator(".banner.trading")).to_have_count(0)

    def test_a_state_changed_elsewhere_reaches_the_open_page(self, live, page):
        """A halt written through the API shows on a viewer's open page without reloading."""
        _sign_in(page, live, "viewer")

        _api(live, "POST", "/v1/trading", {"state": "reducing", "reason": "risk-off"}, role="operator")

        expect(page.locator(".banner.trading.reducing")).to_contain_text("TRADING REDUCING firm-wide")
        expect(page.locator("#version")).to_have_text("2")


class TestLimitsTable:
    def test_default_row_and_each_instrument_with_units_and_where_values_come_from(self, live, page, output_dir):
        """Money in account currency, the collar in %, the default row first, inherited values marked 'default'."""
        _desk_limits(live)
        _sign_in(page, live, "viewer")

        rows = page.locator("#instruments tbody tr")
        assert ["default", "BTC"] == rows.evaluate_all("rs => rs.map(r => r.dataset.instrument)")
        btc, default = _row(page, "BTC"), _row(page, "default")
        expect(btc.locator('td[data-field="max_order_notional"]')).to_have_text("10,000 acct ccy")
        expect(btc.locator('td[data-field="max_order_notional"]')).not_to_contain_text("default")
        expect(btc.locator('td[data-field="price_collar"]')).to_have_text(re.compile(r"^2 %\s*default$"))
        expect(btc.locator('td[data-field="max_position_notional"]')).to_contain_text("250,000 acct ccy")
        expect(default.locator('td[data-field="price_collar"]')).to_have_text("2 %")
        expect(default.locator('td[data-field="max_order_quantity"]')).to_have_text("\u2013")  # an en dash: no limit
        head = page.locator("#instruments thead")
        expect(head.locator("th", has_text="max_order_notional")).to_contain_text("account currency")
        expect(head.locator("th", has_text="price_collar")).to_contain_text("% of the reference price")

        controls = page.locator("#firm-controls")
        expect(controls.locator('tr[data-field="max_orders_per_minute"]')).to_contain_text("60 per executor")
        expect(controls.locator('tr[data-field="max_daily_loss"]')).to_contain_text("2,500 acct ccy")
        expect(controls.locator('tr[data-field="max_gross_exposure"]')).to_contain_text("none")
        expect(controls.locator('tr[data-field="allow_unlisted"]')).to_contain_text("yes")
        page.locator("#trading-panel").screenshot(path=str(output_dir / "trading-panel.png"))

    def test_viewer_sees_the_states_but_no_way_to_change_them(self, live, page):
        """A viewer's selectors are disabled and the form for a new instrument is hidden."""
        _desk_limits(live)
        _sign_in(page, live, "viewer")

        for selector in page.locator("select.state-select").all():
            expect(selector).to_be_disabled()
        expect(page.locator("select.state-select")).to_have_count(1 + 4 + 2)  # firm, strategies, default and BTC
        expect(page.locator("#instrument-form")).to_be_hidden()
