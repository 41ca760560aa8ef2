"""The browser tests' shared fixtures: the ones ``test_dashboard.py`` defines, for every file in this folder."""

from __future__ import annotations

from test_dashboard import browser, fast_live, live, output_dir, page

__all__ = ["browser", "fast_live", "live", "output_dir", "page"]
