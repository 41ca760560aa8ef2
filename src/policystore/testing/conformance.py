"""The back-end conformance suite: the checks any back end passes to keep the store's contract.

Each check is an async function that takes a :class:`BackendFactory` for one
new, empty store, and raises :class:`ConformanceError` when the back end
breaks a promise of the :class:`~policystore.backends.base.Backend` protocol:

- versions: an empty store is version 0; each commit makes the next version;
  a commit whose version is not the next one conflicts and writes nothing;
  of committers racing for a version exactly one wins, and committers that
  retry leave no gap;
- history: entries come back as committed, newest first and paged by
  ``before``, or oldest first between two versions (``entries``);
- notifications: a new listener is told to check (0); each commit reaches a
  listener on another back end; ``close()`` ends the listeners;
- records (``backend.records``): they read back as put, ``add`` stores only
  where no record is and one of racing adds wins, collections are apart and
  make no version, bad names and values are refused;
- outages: every call to an unreachable store raises
  :class:`~policystore.StoreUnavailableError` in bounded time; a
  :class:`~policystore.PolicyStore` over the back end, open through an outage
  or opened during one, answers from its last-known-good copy, stale, and
  goes live after it; a listener hears 0 through an outage and hears of
  commits made after it.

The checks need no test framework: run them all with :func:`run_conformance`,
or one by one from :data:`CHECKS` (``policystore.testing.pytest`` makes each a
pytest test)::

    def fresh_store() -> BackendFactory:
        name = f"conformance-{uuid.uuid4().hex}"
        return BackendFactory(open=lambda: MyBackend(DSN, namespace=name))

    asyncio.run(run_conformance(fresh_store))
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Final

from policystore.testing._checks_history import (
    check_entries_between_versions_are_oldest_first,
    check_history_is_newest_first_and_pages_by_before,
)
from policystore.testing._checks_notices import (
    check_close_ends_listeners,
    check_commit_is_announced_to_listeners,
    check_new_listener_is_told_to_check,
)
from policystore.testing._checks_outage import (
    check_listener_hears_zero_and_later_commits_through_an_outage,
    check_open_store_reads_stale_through_outage_then_reconverges,
    check_store_opened_during_outage_reads_last_known_good_then_goes_live,
    check_unreachable_store_fails_in_bounded_time,
)
from policystore.testing._checks_records import (
    check_records_add_only_where_none_is_and_one_racing_add_wins,
    check_records_are_kept_apart_from_the_policy_and_shared,
    check_records_refuse_bad_names_and_values_writing_nothing,
    check_records_round_trip,
)
from policystore.testing._checks_versions import (
    check_commits_make_contiguous_versions,
    check_concurrent_committers_one_wins_per_version,
    check_empty_store_reads_as_version_zero,
    check_off_by_one_commit_conflicts_and_changes_nothing,
    check_retrying_committers_leave_no_gap,
)
from policystore.testing._harness import BackendFactory, ConformanceError

__all__ = ["CHECKS", "BackendFactory", "Check", "ConformanceError", "check_name", "run_conformance"]

#: One conformance check: an async function of a factory for one new, empty store.
Check = Callable[[BackendFactory], Coroutine[Any, Any, None]]

#: Every check, in the order :func:`run_conformance` runs them.
CHECKS: Final[tuple[Check, ...]] = (
    check_empty_store_reads_as_version_zero,
    check_commits_make_contiguous_versions,
    check_off_by_one_commit_conflicts_and_changes_nothing,
    check_concurrent_committers_one_wins_per_version,
    check_retrying_committers_leave_no_gap,
    check_history_is_newest_first_and_pages_by_before,
    check_entries_between_versions_are_oldest_first,
    check_new_listener_is_told_to_check,
    check_commit_is_announced_to_listeners,
    check_close_ends_listeners,
    check_records_round_trip,
    check_records_add_only_where_none_is_and_one_racing_add_wins,
    check_records_are_kept_apart_from_the_policy_and_shared,
    check_records_refuse_bad_names_and_values_writing_nothing,
    check_unreachable_store_fails_in_bounded_time,
    check_open_store_reads_stale_through_outage_then_reconverges,
    check_store_opened_during_outage_reads_last_known_good_then_goes_live,
    check_listener_hears_zero_and_later_commits_through_an_outage,
)


def check_name(check: Check) -> str:
    """Return a check's name as a test id: ``commits_make_contiguous_versions``."""
    return getattr(check, "__name__", repr(check)).removeprefix("check_")


async def run_conformance(
    make_factory: Callable[[], BackendFactory | Awaitable[BackendFactory]], checks: Iterable[Check] = CHECKS
) -> list[str]:
    """Run each check on a new, empty store that ``make_factory`` gives it; report every failure at once.

    Args:
        make_factory: returns (or returns an awaitable of) a :class:`BackendFactory`
            for a new, empty store; it is called once per check.
        checks: the checks to run (all by default).

    Returns:
        The names of the checks that passed (all of them).

    Raises:
        ConformanceError: one or more checks failed; the message names each
            with its failure.
    """
    passed: list[str] = []
    failures: list[str] = []
    for check in checks:
        made = make_factory()
        factory = await made if inspect.isawaitable(made) else made
        try:
            await check(factory)
        except ConformanceError as exc:
            failures.append(f"{check_name(check)}: {exc}")
        except Exception as exc:  # noqa: BLE001 - any error of the back end fails its check, reported with the rest
            failures.append(f"{check_name(check)}: raised {exc!r}")
        else:
            passed.append(check_name(check))
    if failures:
        raise ConformanceError(
            f"{len(failures)} of {len(failures) + len(passed)} checks failed: " + "; ".join(failures)
        )
    return passed
