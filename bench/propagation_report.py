"""The rows of bench/propagation.py: figures in ms by kind of write, and their ratios to the durable floor."""

from __future__ import annotations

__all__ = ["Results", "by_kind", "pct", "report_ratios", "report_store", "row"]


def by_kind() -> dict[str, list[float]]:
    """Empty figures for each kind of write ("switch", "limit"), and for each by direction ("switch/loosen")."""
    return {key: [] for kind in ("switch", "limit") for key in (kind, f"{kind}/tighten", f"{kind}/loosen")}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, ms: list[float]) -> str:
    return f"{name:<44} p50 {pct(ms, 0.5):10.3f} ms   p99 {pct(ms, 0.99):10.3f} ms   max {max(ms):10.3f} ms"


class Results:
    """The figures of one run, in ms."""

    def __init__(self) -> None:
        self.floors: dict[str, list[float]] = {"raw": [], "direct": [], "durable": []}
        self.store: dict[str, dict[str, list[float]]] = {"snapshot": by_kind()}
        self.reacting: dict[str, dict[str, list[float]]] = {
            way: by_kind() for way in ("snapshot", "watch", "subscribe", "called")
        }
        #: How many events each way heard, and how many of them before the snapshot held their version.
        self.heard = {"snapshot": 0, "watch": 0, "subscribe": 0}
        self.behind = {"watch": 0, "subscribe": 0}
        #: Each stage's figures by kind of version ("switch/loosen"; see propagation_stages).
        self.reader_stages: dict[str, dict[str, list[float]]] = {}
        self.writer_stages: dict[str, dict[str, list[float]]] = {}
        self.committed: dict[int, int] = {}


#: The ways a process that reacts hears of a change.
LABELS = {
    "snapshot": "commit -> snapshot",
    "watch": "change seen by watch()",
    "subscribe": "change seen by subscribe",
    "called": "write called -> watch()",
}
KINDS = (("switch", "mode switches"), ("limit", "limit changes"))


def report_store(results: Results) -> None:
    """The store's rows: the snapshot of processes that only read, then the processes that react."""
    stores = results.store["snapshot"]
    print(row("PolicyStore commit -> snapshot", stores["switch"]))
    _directions(stores, "switch", "  mode switches that")
    if stores["limit"]:
        print(row("  the same, limit changes", stores["limit"]))
    _directions(stores, "limit", "  limit changes that")
    print("processes that react (watch() and subscribe):")
    for kind, name in KINDS:
        for way, label in LABELS.items():
            figures = results.reacting[way]
            if figures[kind]:
                print(row(f"  {label}, {name}", figures[kind]))
            if way in {"watch", "subscribe"}:
                _directions(figures, kind, "    that")


def _directions(figures: dict[str, list[float]], kind: str, label: str) -> None:
    for direction in ("tighten", "loosen"):
        if figures[f"{kind}/{direction}"]:
            print(row(f"{label} {direction}", figures[f"{kind}/{direction}"]))


def report_ratios(results: Results) -> None:
    """Each way of hearing a change against the durable floor, and events heard before the snapshot held them."""
    durable = results.floors["durable"]
    print("\nagainst the durable floor (goal: at most 1.25x at p50 and at p99):")
    for kind, name in KINDS:
        for way in ("watch", "subscribe"):
            figures = results.reacting[way][kind]
            if figures:
                p50, p99 = (pct(figures, q) / pct(durable, q) for q in (0.5, 0.99))
                print(f"  {LABELS[way] + ', ' + name:<44} p50 {p50:5.2f}x   p99 {p99:5.2f}x")
    for way, count in results.behind.items():
        print(f"  events seen by {way} before the snapshot held their version: {count} of {results.heard[way]}")
