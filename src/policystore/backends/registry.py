"""Which back end a store URL (or a client object) names: the registry of back-end declarations.

The store asks the registry, never a back end by name. The registry starts with
policystore's own back ends (:mod:`policystore.backends.builtin`) and finds
others through the entry-point group ``policystore.backends``: each entry point
is named after a URL scheme and names a
:class:`~policystore.backends.declaration.BackendDeclaration` that serves it::

    [project.entry-points."policystore.backends"]
    etcd = "policystore_etcd:BACKEND"

An entry point is loaded only when a URL of its scheme is opened (or a client
object no loaded declaration recognises is given), so an installed back end
costs nothing to a program that never uses it. :func:`register` adds a
declaration by hand.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Final

from policystore.backends.base import Backend
from policystore.backends.builtin import BUILTIN
from policystore.backends.declaration import SCHEME, BackendDeclaration, in_cache
from policystore.errors import ClientTypeError, FieldError, PolicyValidationError
from policystore.redaction import redact

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "BackendRegistry", "register", "scheme_of"]

#: The entry-point group other packages declare their back ends in.
ENTRY_POINT_GROUP: Final = "policystore.backends"


def _invalid(field: str, message: str) -> PolicyValidationError:
    return PolicyValidationError([FieldError(field, message)])


def scheme_of(url: str) -> str:
    """Return the scheme of ``url`` in lower case, or "" when it names none."""
    scheme, separator, _ = url.partition("://")
    lowered = scheme.lower()
    return lowered if separator and SCHEME.fullmatch(lowered) else ""


class BackendRegistry:
    """The back-end declarations a process knows, by URL scheme.

    Args:
        declarations: the declarations known from the start, in the order their URL forms are suggested.
        group: the entry-point group searched for schemes none of them serves.
    """

    def __init__(self, declarations: Iterable[BackendDeclaration] = (), *, group: str = ENTRY_POINT_GROUP) -> None:
        self._group = group
        self._declarations: list[BackendDeclaration] = []
        self._by_scheme: dict[str, BackendDeclaration] = {}
        #: Entry points are loaded from any thread that opens a store (the sync facade runs its own).
        self._lock = threading.RLock()
        for declaration in declarations:
            self.register(declaration)

    @property
    def declarations(self) -> tuple[BackendDeclaration, ...]:
        """The declarations registered so far (entry points not yet needed are not among them)."""
        return tuple(self._declarations)

    def register(self, declaration: BackendDeclaration) -> None:
        """Add ``declaration``; registering the same one again changes nothing.

        Raises:
            PolicyValidationError: it is no BackendDeclaration, or another declaration serves one of its schemes.
        """
        if not isinstance(declaration, BackendDeclaration):
            msg = f"a back end is registered as a BackendDeclaration, not a {type(declaration).__name__}"
            raise _invalid("backend", msg)
        with self._lock:
            if declaration in self._declarations:
                return
            for scheme in declaration.schemes:
                holder = self._by_scheme.get(scheme)
                if holder is not None:
                    msg = f"back end {declaration.name!r} declares {scheme}://, which back end {holder.name!r} serves"
                    raise _invalid("schemes", msg)
            self._declarations.append(declaration)
            self._by_scheme.update(dict.fromkeys(declaration.schemes, declaration))

    def find(self, scheme: str) -> BackendDeclaration | None:
        """Return the declaration serving ``scheme``, loading its entry point if need be; None if none does.

        Raises:
            PolicyValidationError: the entry point named ``scheme`` cannot be loaded or names no fit declaration.
        """
        with self._lock:
            found = self._by_scheme.get(scheme)
            if found is None and scheme:
                for entry_point in self._entry_points():
                    if entry_point.name.lower() == scheme:
                        return self._load(entry_point, scheme)
            return found

    def declaration_for(self, url: str) -> BackendDeclaration:
        """Return the declaration serving ``url``'s scheme.

        Raises:
            PolicyValidationError: the URL names no known store (naming its scheme and the known ones).
        """
        scheme = scheme_of(url)
        found = self.find(scheme)
        if found is not None:
            return found
        known = ", ".join(dict.fromkeys([*self._by_scheme, *(e.name.lower() for e in self._entry_points())]))
        named = f"its scheme {scheme!r} is none of" if scheme else "it starts with no URL scheme; the known ones are"
        examples = [d.example for d in self._declarations]
        use = " or ".join([", ".join(examples[:-1]), examples[-1]] if len(examples) > 1 else examples)
        raise _invalid("store", f"{redact(url)!r} names no known store ({named} {known}); use {use}")

    def open_url(self, url: str) -> Backend:
        """Return an unconnected back end for ``url``.

        Raises:
            PolicyValidationError: the URL names no known store, is malformed for
                its back end, or the back end's libraries are not installed.
        """
        declaration = self.declaration_for(url)
        try:
            return declaration.open_url(url)
        except ImportError as exc:
            if declaration.requires is None:
                raise
            msg = (
                f"the {declaration.name} back end needs {declaration.requires} ({exc}); "
                f"install it with: pip install '{declaration.install}'"
            )
            raise _invalid("store", msg) from exc

    def open_client(self, client: object, argument: str) -> Backend:
        """Return the back end for a client object the caller made (a ``redis.asyncio.Redis``).

        Args:
            client: the object given where a back end or URL was expected.
            argument: the parameter that received it, for messages.

        Raises:
            ClientTypeError: no declaration takes the object, or the one whose kind it is cannot use it.
            PolicyValidationError: an entry point asked about it cannot be loaded.
        """
        with self._lock:
            asked: set[int] = set()
            for _ in range(2):  # the declarations registered, then those of entry points not yet loaded
                for declaration in self._declarations:
                    if declaration.open_client is None or id(declaration) in asked:
                        continue
                    asked.add(id(declaration))
                    backend = declaration.open_client(client, argument)
                    if backend is not None:
                        return backend
                for entry_point in self._entry_points():
                    if entry_point.name.lower() not in self._by_scheme:
                        self._load(entry_point, entry_point.name.lower())
            kinds = [d.client_kind for d in self._declarations if d.open_client is not None]
            expected = f"a Backend, a store URL or {' or '.join(kinds)}" if kinds else "a Backend or a store URL"
            raise ClientTypeError(argument, expected, client)

    def default_lkg_path(self, url: str) -> Path | None:
        """Return where the last-known-good copy of the store at ``url`` is kept by default, or None for none.

        A URL no declaration serves (a back end object of the caller's own)
        keeps it in the user's cache folder, one file per URL.

        Raises:
            PolicyValidationError: the URL is malformed for its back end, or the
                entry point of its scheme cannot be loaded.
        """
        declaration = self.find(scheme_of(url))
        return declaration.default_lkg_path(url) if declaration is not None else in_cache(redact(url))

    def _entry_points(self) -> tuple[EntryPoint, ...]:
        return tuple(entry_points(group=self._group))

    def _load(self, entry_point: EntryPoint, scheme: str) -> BackendDeclaration:
        """Load the declaration ``entry_point`` names and register it.

        Raises:
            PolicyValidationError: it cannot be imported, is no BackendDeclaration, or does not serve ``scheme``.
        """
        where = f"the entry point {entry_point.name} = {entry_point.value!r} of group {self._group}"
        try:
            declaration = entry_point.load()
        except Exception as exc:
            raise _invalid("store", f"{where} cannot be loaded ({type(exc).__name__}: {exc})") from exc
        if not isinstance(declaration, BackendDeclaration):
            raise _invalid("store", f"{where} names a {type(declaration).__name__}, not a BackendDeclaration")
        if scheme not in declaration.schemes:
            schemes = ", ".join(declaration.schemes)
            raise _invalid(
                "store", f"{where} names back end {declaration.name!r}, which serves {schemes}, not {scheme}"
            )
        self.register(declaration)
        return declaration


#: The registry the store opens URLs with: policystore's own back ends, then installed ones.
REGISTRY: Final = BackendRegistry(BUILTIN)


def register(declaration: BackendDeclaration) -> None:
    """Make the store open URLs of ``declaration``'s schemes with it, in this process.

    Raises:
        PolicyValidationError: it is no BackendDeclaration, or another back end serves one of its schemes.
    """
    REGISTRY.register(declaration)
