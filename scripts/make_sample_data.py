"""Write the sample replay data: src/policystore/data/sample_signals.csv and sample_prices.csv.

Three UTC days of hourly prices for six symbols, and the signals a strategy mix
produced over them, from a fixed seed (the files are the same on every run):

* day 1 and day 3 are winning stretches: signals follow each symbol's trend
  more often the higher their confidence;
* day 2 is a losing stretch: trends turn and most signals are wrong, so the
  drawdown breaker trips in the stricter modes and the kill switch refuses the rest;
* a few bursts make the other refusals happen: a flip-flop on one symbol
  (a close, then a re-entry inside the cooldown) and a burst of conservative
  signals across every symbol (more than its five positions);
* every signal carries the market price it was made against
  (``reference_price``): most are within a few basis points of the signal's
  price, and a few are stale quotes 3 to 6 % away, which a price collar
  (``instruments.<SYMBOL>.price_collar``) refuses. The reference prices come from
  a random stream of their own, so every other column is as it was before they
  were added.

Run: ``python scripts/make_sample_data.py [OUT_DIR]``.
"""

from __future__ import annotations

import csv
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 11
START = datetime(2024, 3, 4, tzinfo=UTC)
DAYS = 3
SYMBOLS = {"BTC": 60_000.0, "ETH": 3_200.0, "SOL": 120.0, "BNB": 400.0, "XRP": 0.6, "ADA": 0.7}
STRATEGIES = ("moderate", "moderate", "aggressive", "conservative", "defensive")
DRIFT = 0.0035  # per hour, in the trend's direction
NOISE = 0.006  # per hour
STOP = 0.015  # stop distance as a fraction of the price
VOLATILITY_SHARE = 0.2  # signals that give a volatility instead of a stop distance
REFERENCE_NOISE = 0.001  # how far a signal's price is from its reference price, typically
STALE_SHARE = 0.05  # signals whose reference price is a stale quote, 3 to 6 % away


def _prices(rng: random.Random) -> tuple[list[tuple[datetime, str, float]], dict[tuple[str, int], int]]:
    """Hourly prices; returns the rows and each (symbol, hour)'s trend direction."""
    rows: list[tuple[datetime, str, float]] = []
    trends: dict[tuple[str, int], int] = {}
    last = dict(SYMBOLS)
    for hour in range(DAYS * 24):
        for symbol in SYMBOLS:
            if hour % 8 == 0:
                trends[symbol, hour] = rng.choice((1, -1))
            else:
                trends[symbol, hour] = trends[symbol, hour - 1]
            step = trends[symbol, hour] * DRIFT + rng.gauss(0, NOISE)
            last[symbol] *= math.exp(step)
            rows.append((START + timedelta(hours=hour), symbol, last[symbol]))
    return rows, trends


def _views(rng: random.Random, trends: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """Each (symbol, 8-hour segment)'s signalled direction: the trend's, or against it."""
    views = {}
    for (symbol, hour), trend in trends.items():
        if hour % 8 == 0:
            right = 0.15 if hour // 24 == 1 else 0.75  # day 2 is the losing stretch
            views[symbol, hour // 8] = trend if rng.random() < right else -trend
    return views


def _signals(
    rng: random.Random, prices: dict[tuple[str, int], float], trends: dict[tuple[str, int], int]
) -> list[tuple[datetime, str, str, float, float, str, float | None, float | None]]:
    rows: list[tuple[datetime, str, str, float, float, str, float | None, float | None]] = []
    views = _views(rng, trends)

    def side(symbol: str, hour: int) -> str:
        return "buy" if views[symbol, hour // 8] > 0 else "sell"

    def confidence(symbol: str, hour: int) -> float:
        # A right view tends to come with higher confidence: confidence carries information.
        right = views[symbol, hour // 8] == trends[symbol, hour]
        return round(rng.uniform(0.55, 0.95) if right else rng.uniform(0.4, 0.8), 2)

    def add(at: datetime, symbol: str, side: str, confidence: float, *, strategy: str, hour: int) -> None:
        price = prices[symbol, hour]
        if rng.random() < VOLATILITY_SHARE:  # some signals carry a volatility instead of a stop
            rows.append((at, symbol, side, confidence, price, strategy, None, STOP / 2))
        else:
            rows.append((at, symbol, side, confidence, price, strategy, price * STOP, None))

    for hour in range(DAYS * 24):
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            symbol = rng.choice(list(SYMBOLS))
            at = START + timedelta(hours=hour, minutes=rng.randint(5, 55))
            add(at, symbol, side(symbol, hour), confidence(symbol, hour), strategy=rng.choice(STRATEGIES), hour=hour)
    # A flip-flop on ETH: open, close by an opposite signal, try again inside the cooldown.
    for hour in (10, 58):
        at = START + timedelta(hours=hour, minutes=2)
        trend = trends["ETH", hour]
        first, second = ("buy", "sell") if trend > 0 else ("sell", "buy")
        add(at, "ETH", first, 0.8, strategy="moderate", hour=hour)
        add(at + timedelta(seconds=40), "ETH", second, 0.8, strategy="moderate", hour=hour)
        add(at + timedelta(seconds=80), "ETH", first, 0.8, strategy="moderate", hour=hour)
    # A burst of conservative signals across every symbol: more than its five positions.
    for hour in (14, 62):
        for i, symbol in enumerate(SYMBOLS):
            at = START + timedelta(hours=hour, minutes=1, seconds=5 * i)
            add(at, symbol, side(symbol, hour), 0.9, strategy="conservative", hour=hour)
    rows.sort(key=lambda r: r[0])
    return rows


def _references(prices: list[float]) -> list[float]:
    """A reference price for each signal price, from a stream of its own."""
    rng = random.Random(SEED + 1)
    references = []
    for price in prices:
        if rng.random() < STALE_SHARE:
            away = rng.uniform(0.03, 0.06) * rng.choice((1, -1))
        else:
            away = rng.gauss(0, REFERENCE_NOISE)
        references.append(price * (1 + away))
    return references


def main(out: Path) -> None:
    """Write both files into ``out``."""
    rng = random.Random(SEED)
    price_rows, trends = _prices(rng)
    by_hour = {(symbol, int((t - START).total_seconds() // 3600)): p for t, symbol, p in price_rows}
    signal_rows = _signals(rng, by_hour, trends)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "sample_prices.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("time", "symbol", "price"))
        writer.writerows((t.isoformat(), s, f"{p:.6g}") for t, s, p in price_rows)
    with (out / "sample_signals.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = ("time", "symbol", "side", "confidence", "price", "strategy", "stop_distance", "volatility")
        writer.writerow((*columns, "reference_price"))
        references = _references([row[4] for row in signal_rows])
        for (t, s, side, c, p, strategy, stop, vol), reference in zip(signal_rows, references, strict=True):
            writer.writerow(
                (
                    t.isoformat(),
                    s,
                    side,
                    f"{c:.2f}",
                    f"{p:.6g}",
                    strategy,
                    "" if stop is None else f"{stop:.6g}",
                    "" if vol is None else f"{vol:g}",
                    f"{reference:.6g}",
                )
            )
    print(f"wrote {len(price_rows)} prices and {len(signal_rows)} signals to {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src/policystore/data")
