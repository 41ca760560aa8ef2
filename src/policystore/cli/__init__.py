"""The ``policystore`` command line: see ``policystore --help``.

The entry point is :func:`policystore.cli.main.main`. Commands share the global
options through :class:`policystore.cli.context.CliContext` (``ctx.obj``).
"""
