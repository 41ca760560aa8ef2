"""The back-end registry: every scheme in one place, today's defaults kept, and back ends of other packages."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import redis
import redis.asyncio

import policystore
from policystore import PolicyValidationError
from policystore.backends.builtin import BUILTIN, MEMORY, REDIS, SQLITE
from policystore.backends.declaration import BackendDeclaration
from policystore.backends.memory import MemoryBackend
from policystore.backends.postgres import PostgresBackend
from policystore.backends.redis import RedisBackend
from policystore.backends.registry import ENTRY_POINT_GROUP, REGISTRY, BackendRegistry
from policystore.backends.sqlite import SQLiteBackend
from policystore.errors import ClientTypeError
from policystore.store.urls import backend_for_url, default_lkg_path

SECRET = "s3cr3t-pw"  # noqa: S105 - a made-up password the messages must hide
#: The folder the worktree's package is imported from, for programs run apart.
SOURCE = str(Path(policystore.__file__).parents[1])

TOY_MODULE = '''
"""A back end of another package: a memory store reached as toy://NAME."""
from pathlib import Path

from policystore.backends.declaration import BackendDeclaration
from policystore.backends.memory import MemoryBackend


class ToyBackend(MemoryBackend):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.url = f"toy://{name}"


BACKEND = BackendDeclaration(
    name="toy",
    schemes=("toy", "toys"),
    example="toy://NAME",
    open_url=lambda url: ToyBackend(url.split("://", 1)[1]),
    lkg_path=lambda url: Path(url.split("://", 1)[1] + ".toy-lkg.json"),
)
NOT_A_DECLARATION = {"schemes": ["odd"]}
'''


def install_distribution(site: Path, name: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """Lay out an installed distribution in ``site`` as pip would: its modules and a dist-info folder.

    Args:
        site: the folder to put on ``sys.path``.
        name: the distribution's name.
        entry_points: entry-point name -> ``module:object`` in the ``policystore.backends`` group.
        modules: module name -> source.

    Returns:
        ``site``.
    """
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    (info / "RECORD").write_text("")
    return site


@pytest.fixture
def toy_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """A distribution declaring the toy back end (and three broken entry points), found on ``sys.path``."""
    module = f"toy_backend_{abs(hash(request.node.nodeid))}"
    site = install_distribution(
        tmp_path / "site",
        "toy-backend",
        {
            "toy": f"{module}:BACKEND",
            "toys": f"{module}:BACKEND",
            "odd": f"{module}:NOT_A_DECLARATION",
            "gone": "no_such_module_anywhere:BACKEND",
            "other": f"{module}:BACKEND",
        },
        {module: TOY_MODULE},
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    return site


def run_program(code: str, *, path: tuple[Path, ...] = (), cwd: Path | None = None) -> dict[str, object]:
    """Run ``code`` in a new Python process on the worktree's package; return the JSON it prints last."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLICYSTORE_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([*(str(p) for p in path), SOURCE])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    assert 0 == result.returncode, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return loaded


class TestBuiltinSchemes:
    """Each scheme of ours opens the back end it always did, from one declaration per back end."""

    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            ("memory://", MemoryBackend),
            ("memory://shared", MemoryBackend),
            ("sqlite:///policy.db", SQLiteBackend),
            ("SQLITE:///policy.db", SQLiteBackend),
            ("redis://127.0.0.1:6379/0", RedisBackend),
            ("rediss://127.0.0.1:6380/0", RedisBackend),
            ("unix:///run/redis.sock?db=0", RedisBackend),
            ("redis+sentinel://127.0.0.1:26379/mymaster", RedisBackend),
            ("postgresql://u@127.0.0.1:5432/db", PostgresBackend),
            ("postgres://u@127.0.0.1:5432/db", PostgresBackend),
        ],
    )
    def test_scheme_opens_its_back_end(self, url: str, kind: type) -> None:
        """The registry opens each URL form with its own back end, unconnected."""
        assert isinstance(backend_for_url(url), kind)

    def test_every_scheme_is_declared_once(self) -> None:
        """No scheme belongs to two back ends, and every scheme belongs to one."""
        schemes = [scheme for declaration in BUILTIN for scheme in declaration.schemes]
        assert len(schemes) == len(set(schemes))
        assert {"memory", "sqlite", "redis", "rediss", "redis+sentinel", "unix", "postgresql", "postgres"} == set(
            schemes
        )

    def test_unknown_scheme_refused_naming_it_and_the_known_ones(self) -> None:
        """An undeclared scheme is a validation error of 'store' naming it, every known scheme and no secret."""
        with pytest.raises(PolicyValidationError) as caught:
            backend_for_url(f"etcd://user:{SECRET}@h:2379/x")

        message = str(caught.value)
        assert ("store",) == caught.value.paths
        assert "'etcd'" in message
        assert all(f" {s}" in message for d in BUILTIN for s in d.schemes)
        assert "sqlite:///PATH" in message
        assert SECRET not in message

    def test_text_without_a_scheme_refused_saying_so(self) -> None:
        """A bare path is no URL: the message says it names no scheme."""
        with pytest.raises(PolicyValidationError, match="no URL scheme"):
            backend_for_url("./policy.db")

    def test_a_back_end_left_out_of_a_registry_is_unknown_there(self) -> None:
        """A registry without a back end refuses its URLs rather than opening them with another back end."""
        registry = BackendRegistry([MEMORY])

        with pytest.raises(PolicyValidationError, match="'redis' is none of memory"):
            registry.open_url("redis://127.0.0.1:6379/0")


class TestDefaultLastKnownGood:
    """Where each back end keeps its last-known-good copy by default, as before the registry."""

    def test_memory_keeps_none(self) -> None:
        """A memory store keeps no copy on disk."""
        assert default_lkg_path("memory://x") is None

    def test_sqlite_keeps_it_beside_the_database(self) -> None:
        """``sqlite:///a/b.db`` keeps ``a/b.db.lkg.json``; the query is no part of the path."""
        assert Path("a/b.db.lkg.json") == default_lkg_path("sqlite:///a/b.db?mode=rw")

    @pytest.mark.parametrize(
        "url",
        ["redis://:{pw}@h:6379/0", "postgresql://u:{pw}@h:5432/db", "elsewhere://u:{pw}@h/x"],
        ids=["redis", "postgres", "a scheme no back end declares"],
    )
    def test_server_stores_keep_it_in_the_cache_named_without_the_password(
        self, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One file per URL in the cache folder, the same whatever the password (it is hidden first)."""
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        first, second = default_lkg_path(url.format(pw=SECRET)), default_lkg_path(url.format(pw="other"))

        assert first is not None
        assert first == second
        assert (tmp_path / "policystore") == first.parent
        assert first.name.startswith("lkg-")
        assert SECRET not in str(first)

    def test_environment_overrides_every_back_end(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``POLICYSTORE_LKG_PATH`` wins over the back end's own default, even memory's none."""
        monkeypatch.setenv("POLICYSTORE_LKG_PATH", "/elsewhere/here.json")

        assert Path("/elsewhere/here.json") == default_lkg_path("memory://x") == default_lkg_path("sqlite:///a.db")


class TestClients:
    """A client object is recognised by the declaration that takes clients, with today's refusals."""

    def test_async_redis_client_wrapped(self) -> None:
        """A redis.asyncio.Redis becomes a Redis back end on that client."""
        backend = REGISTRY.open_client(redis.asyncio.Redis(port=1), "backend")

        assert isinstance(backend, RedisBackend)

    def test_sync_redis_client_refused_naming_the_async_one(self) -> None:
        """A synchronous client is a ClientTypeError naming redis.asyncio.Redis and the argument."""
        with pytest.raises(ClientTypeError) as caught:
            REGISTRY.open_client(redis.Redis(port=1), "redis_client")

        assert ("redis_client", "redis.asyncio.Redis") == (caught.value.argument, caught.value.expected)

    def test_object_of_no_kind_refused_listing_what_is_taken(self) -> None:
        """An object no declaration takes is refused with the same words as before."""
        with pytest.raises(ClientTypeError) as caught:
            REGISTRY.open_client(42, "backend")

        assert "backend must be a Backend, a store URL or a redis.asyncio.Redis client, not builtins.int." == str(
            caught.value
        )

    def test_a_registry_without_client_back_ends_names_only_back_ends_and_urls(self) -> None:
        """Without a declaration that takes clients, the refusal offers only what is left."""
        with pytest.raises(ClientTypeError, match="must be a Backend or a store URL, not"):
            BackendRegistry([MEMORY, SQLITE]).open_client(object(), "backend")


class TestDeclarations:
    """Registering declarations by hand, and declarations that cannot be registered."""

    def test_a_scheme_served_twice_refused(self) -> None:
        """A second back end for a scheme is refused naming both; the first keeps it."""
        registry = BackendRegistry(BUILTIN)
        rival = BackendDeclaration(name="rival", schemes=("rediss",), example="rediss://", open_url=MemoryBackend)

        with pytest.raises(PolicyValidationError, match="'rival' declares rediss://, which back end 'redis' serves"):
            registry.register(rival)
        assert REDIS is registry.find("rediss")

    def test_registering_the_same_declaration_again_changes_nothing(self) -> None:
        """register is idempotent for one declaration."""
        registry = BackendRegistry(BUILTIN)
        registry.register(MEMORY)

        assert BUILTIN == registry.declarations

    @pytest.mark.parametrize("schemes", [(), ("Toy",), ("to y",), ("toy://",)], ids=["none", "upper", "space", "sep"])
    def test_malformed_schemes_refused(self, schemes: tuple[str, ...]) -> None:
        """A declaration whose schemes no URL could carry is refused when made."""
        with pytest.raises(PolicyValidationError):
            BackendDeclaration(name="bad", schemes=schemes, example="x://", open_url=MemoryBackend)

    def test_missing_library_named_with_its_install_command(self) -> None:
        """An open that fails to import says what to install, for a back end that declares it."""
        registry = BackendRegistry(
            [
                BackendDeclaration(
                    name="needy",
                    schemes=("needy",),
                    example="needy://",
                    open_url=_needs_a_library,
                    requires="nolib",
                    install="policystore[needy]",
                )
            ]
        )

        with pytest.raises(
            PolicyValidationError, match=r"needy back end needs nolib .*pip install 'policystore\[needy\]'"
        ):
            registry.open_url("needy://x")

    def test_import_error_of_a_back_end_that_declares_no_requirement_is_its_own(self) -> None:
        """Without ``requires``, an import error is a bug of the back end's, raised as it is."""
        registry = BackendRegistry(
            [BackendDeclaration(name="needy", schemes=("needy",), example="needy://", open_url=_needs_a_library)]
        )

        with pytest.raises(ImportError):
            registry.open_url("needy://x")


def _needs_a_library(url: str) -> MemoryBackend:
    import no_such_library_for_policystore  # type: ignore[import-not-found]  # noqa: F401

    return MemoryBackend(url)


@pytest.mark.usefixtures("toy_site")
class TestEntryPoints:
    """Back ends of other packages, found through the ``policystore.backends`` entry-point group."""

    def test_unknown_scheme_loads_the_entry_point_named_after_it(self) -> None:
        """The entry point named like the scheme is loaded then, and its declaration opens the URL."""
        registry = BackendRegistry(BUILTIN)

        backend = registry.open_url("toy://desk")

        assert ("toy://desk", "ToyBackend") == (backend.url, type(backend).__name__)
        assert "toy" in [d.name for d in registry.declarations]
        assert Path("desk.toy-lkg.json") == registry.default_lkg_path("toy://desk")

    def test_all_schemes_of_a_loaded_declaration_are_served(self) -> None:
        """Once loaded, the declaration serves every scheme it lists."""
        registry = BackendRegistry(BUILTIN)
        first = registry.find("toys")

        assert first is not None
        assert first is registry.find("toy")

    def test_installed_schemes_listed_before_they_are_loaded(self) -> None:
        """The refusal of an unknown scheme names the installed ones too."""
        with pytest.raises(PolicyValidationError) as caught:
            BackendRegistry(BUILTIN).open_url("nothing://x")

        assert ", toy, toys" in str(caught.value)

    @pytest.mark.parametrize(
        ("scheme", "says"),
        [
            ("odd", "names a dict, not a BackendDeclaration"),
            ("gone", "cannot be loaded (ModuleNotFoundError"),
            ("other", "which serves toy, toys, not other"),
        ],
    )
    def test_broken_entry_point_refused_naming_it(self, scheme: str, says: str) -> None:
        """An entry point that cannot serve its scheme is a validation error naming the entry point and why."""
        with pytest.raises(PolicyValidationError) as caught:
            BackendRegistry(BUILTIN).open_url(f"{scheme}://x")

        assert f"entry point {scheme} = " in str(caught.value)
        assert says in str(caught.value)

    def test_policystore_open_uses_an_installed_back_end_imported_only_then(self, toy_site: Path) -> None:
        """PolicyStore.open on a new scheme finds the installed distribution; its module loads at that open only."""
        module = next(p.stem for p in toy_site.glob("toy_backend_*.py"))
        found = run_program(
            f"""
            import asyncio, json, sys
            from policystore import PolicyStore

            async def main():
                before = "{module}" in sys.modules
                store = await PolicyStore.open("toy://desk", watch=False)
                await store.switch_mode("DEFENSIVE", reason="calm")
                found = [before, "{module}" in sys.modules, type(store.backend).__name__, store.get("version")]
                await store.close()
                return found

            print(json.dumps(asyncio.run(main())))
            """,
            path=(toy_site,),
            cwd=toy_site,
        )

        assert [False, True, "ToyBackend", 2] == found
        assert (toy_site / "desk.toy-lkg.json").exists()  # the declaration's own last-known-good rule
