"""Parsing and redaction of Redis store URLs (no server needed: back ends connect lazily, or to a closed port)."""

from __future__ import annotations

import pytest
import redis.asyncio

from policystore.backends._redis_subscription import endpoint_of
from policystore.backends.redis import RedisBackend, RedisKeys
from policystore.errors import PolicyValidationError, StoreUnavailableError
from policystore.redaction import redact, redact_text
from policystore.store.urls import backend_for_url


class TestFromUrl:
    """redis://, rediss://, unix:// and redis+sentinel:// URLs."""

    def test_plain_url_default_namespace_and_timeout(self) -> None:
        """Without options the namespace is 'default' and every call gets one second."""
        backend = RedisBackend.from_url("redis://127.0.0.1:6379/0")
        assert ("default", 1.0) == (backend.namespace, backend.timeout)
        assert "policystore:default:version" == backend.keys.version

    def test_query_options_namespace_and_timeout_read(self) -> None:
        """namespace= and timeout= are read from the query."""
        backend = RedisBackend.from_url("rediss://h:6380/2?namespace=acct1&timeout=0.25")
        assert ("acct1", 0.25) == (backend.namespace, backend.timeout)
        assert "policystore:acct1:changes" == backend.keys.channel

    def test_password_url_redacted(self) -> None:
        """The shown URL never holds the password."""
        backend = RedisBackend.from_url("redis://user:s3cret@h:6379/0?namespace=a")
        assert "s3cret" not in backend.url
        assert "redis://user:***@h:6379/0?namespace=a" == backend.url

    def test_store_url_routes_to_redis_backend(self) -> None:
        """backend_for_url builds a RedisBackend for each Redis scheme."""
        for url in ("redis://h:1/0", "rediss://h:1/0", "unix:///tmp/r.sock?db=0", "redis+sentinel://h:26379/svc"):
            assert isinstance(backend_for_url(url), RedisBackend)

    def test_sentinel_url_several_hosts_parsed(self) -> None:
        """A Sentinel URL with several hosts, a service and a db is accepted."""
        backend = RedisBackend.from_url("redis+sentinel://:pw@a:26379,b:26380/mymaster/3?namespace=n")
        assert ("n", "redis+sentinel://:***@a:26379,b:26380/mymaster/3?namespace=n") == (backend.namespace, backend.url)

    @pytest.mark.parametrize(
        ("url", "fragment"),
        [
            ("redis://h:1/0?namespace=bad%20name", "namespace"),
            ("redis://h:1/0?namespace=", "namespace"),
            ("redis://h:1/0?timeout=0", "timeout"),
            ("redis://h:1/0?timeout=soon", "timeout"),
            ("redis+sentinel://h:26379/", "redis+sentinel://HOST:PORT"),
            ("redis+sentinel://h:26379/svc/x", "redis+sentinel://HOST:PORT"),
            ("redis+sentinel://h/svc", "HOST:PORT"),
            ("redis://h:1/notadb", "not a valid Redis URL"),
        ],
    )
    def test_malformed_url_refused_naming_part(self, url: str, fragment: str) -> None:
        """A malformed URL raises PolicyValidationError naming what is wrong."""
        with pytest.raises(PolicyValidationError) as caught:
            RedisBackend.from_url(url)
        assert fragment in str(caught.value)


class TestFromClient:
    """Wrapping a caller's client."""

    def test_client_url_names_host_port_db(self) -> None:
        """The back end's URL says where the client points."""
        client = redis.asyncio.Redis(host="10.0.0.5", port=6390, db=4)
        backend = RedisBackend.from_client(client, namespace="x")
        assert "redis://10.0.0.5:6390/4?namespace=x" == backend.url

    def test_keys_of_namespace_share_prefix(self) -> None:
        """Every key of a namespace starts with its prefix."""
        keys = RedisKeys.for_namespace("acct2")
        assert all(
            k.startswith("policystore:acct2:")
            for k in (keys.version, keys.document, keys.documents, keys.history, keys.channel, keys.aux("t"))
        )


SECRET = "Sw0rdf1sh-9"  # noqa: S105 - a made-up password the tests look for in output


class TestRedact:
    """One redaction for every way a URL carries a secret (policystore.redaction.redact)."""

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (f"redis://user:{SECRET}@h:6379/0?namespace=a", "redis://user:***@h:6379/0?namespace=a"),
            (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
            (f"redis://{SECRET}@h:6379/0", "redis://***@h:6379/0"),
            (f"redis://h:6379/0?password={SECRET}&namespace=a", "redis://h:6379/0?password=***&namespace=a"),
            (f"redis://h/0?PASSWORD={SECRET}", "redis://h/0?PASSWORD=***"),
            (f"redis://h/0?pwd={SECRET}&pass={SECRET}x", "redis://h/0?pwd=***&pass=***"),
            (f"redis://h/0?token={SECRET}&auth={SECRET}&key={SECRET}", "redis://h/0?token=***&auth=***&key=***"),
            (f"rediss://h/0?ssl_password={SECRET}&ssl_ca_certs=/ca.crt", "rediss://h/0?ssl_password=***&ssl_ca_certs=/ca.crt"),
            (f"redis://h/0?access_token={SECRET}&sentinel_password={SECRET}", "redis://h/0?access_token=***&sentinel_password=***"),
            (f"redis://h/0?MySecret={SECRET}&api_token={SECRET}", "redis://h/0?MySecret=***&api_token=***"),
            (f"redis://h/0?password={SECRET}@x", "redis://h/0?password=***"),
            (f"redis+sentinel://:{SECRET}@a:26379,b:26380/svc/3", "redis+sentinel://:***@a:26379,b:26380/svc/3"),
            (f"unix:///run/redis.sock?db=0&password={SECRET}", "unix:///run/redis.sock?db=0&password=***"),
            (f"unix://:{SECRET}@/run/redis.sock", "unix://:***@/run/redis.sock"),
            (f"redis://[::1]:6379/0?password={SECRET}", "redis://[::1]:6379/0?password=***"),
            (f"redis://:p%40{SECRET}@h/0", "redis://:***@h/0"),
            (f"redis://:p@{SECRET}@h/0", "redis://:***@h/0"),
        ],
    )  # fmt: skip
    def test_every_secret_form_is_replaced(self, url: str, shown: str) -> None:
        """Userinfo passwords, lone tokens and secret-named query parameters are shown as ***."""
        assert shown == redact(url)
        assert SECRET not in redact(url)

    @pytest.mark.parametrize(
        "url",
        [
            f"redis://:{SECRET}#x@h:6379/0",  # '#' starts a fragment
            f"redis://:ab?{SECRET}@h/0",  # '?' starts a query
            f"redis://:12/{SECRET}@h/0",  # '/' starts the path
            f"redis://:{SECRET}/x@h/0",
        ],
    )
    def test_url_whose_parts_shift_is_hidden_whole(self, url: str) -> None:
        """A password with an unencoded '/', '?', '#' cannot be told apart from the rest: all of it is hidden."""
        assert "redis://***" == redact(url)

    @pytest.mark.parametrize(
        "url", ["redis://h:6379/0?namespace=a&timeout=0.5", "sqlite:///./policystore.db", "memory://x", "redis://h/0"]
    )
    def test_url_without_secret_is_shown_as_given(self, url: str) -> None:
        """Nothing is changed in a URL that carries no secret."""
        assert url == redact(url)

    def test_text_quoting_a_malformed_url_loses_the_secret(self) -> None:
        """redact_text hides what a parser quoted of a URL it misread (here the password read as a port)."""
        url = f"redis://:{SECRET}/x@h/0"
        quoted = f"Port could not be cast to integer value as '{SECRET}' in {url}"

        assert SECRET not in redact_text(quoted, url)

    def test_text_hides_a_password_given_apart_from_the_url(self) -> None:
        """A client's own password, given with also=, is hidden from text too."""
        assert "AUTH *** refused" == redact_text(f"AUTH {SECRET} refused", "redis://h/0", also=(SECRET,))


class TestSecretsStayOut:
    """The Redis back end's URLs, messages and objects never show the password."""

    @pytest.mark.parametrize(
        "url",
        [
            f"redis://127.0.0.1:1/0?password={SECRET}&namespace=a",
            f"redis://:{SECRET}@127.0.0.1:1/0",
            f"redis://{SECRET}@127.0.0.1:1/0",
        ],
    )
    async def test_unreachable_store_error_does_not_show_the_password(self, url: str) -> None:
        """The error of a store that cannot be reached names the URL without its password."""
        backend = RedisBackend.from_url(url)
        with pytest.raises(StoreUnavailableError) as caught:
            await backend.connect()
        await backend.close()

        assert SECRET not in backend.url
        assert SECRET not in str(caught.value)
        assert SECRET not in caught.value.url

    @pytest.mark.parametrize(
        "url",
        [
            f"redis://:{SECRET}/x@h:6379/0",
            f"redis://:12/{SECRET}@h/0",
            f"redis+sentinel://:{SECRET}/x@a:26379/svc",
            f"redis://h:6379/0?password={SECRET}&timeout=soon",
        ],
    )
    def test_malformed_url_refusal_does_not_show_the_password(self, url: str) -> None:
        """A URL refused as malformed is named without any piece of its password."""
        with pytest.raises(PolicyValidationError) as caught:
            RedisBackend.from_url(url)

        assert SECRET not in str(caught.value)

    def test_subscription_endpoint_repr_hides_the_password(self) -> None:
        """The direct subscription's Endpoint names host, port and user, never the password."""
        endpoint = endpoint_of(redis.asyncio.Redis.from_url(f"redis://bob:{SECRET}@h:6390/0"))

        assert endpoint is not None
        assert SECRET == endpoint.password
        assert SECRET not in repr(endpoint)
        assert "h" in repr(endpoint)

    def test_client_password_kept_out_of_the_back_ends_url(self) -> None:
        """A caller's client with a password gives a back end whose URL holds none."""
        backend = RedisBackend.from_client(redis.asyncio.Redis(host="h", password=SECRET))

        assert SECRET not in backend.url
        assert SECRET not in repr(vars(backend))
