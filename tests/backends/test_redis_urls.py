"""Parsing of Redis store URLs (no server needed: back ends connect lazily)."""

from __future__ import annotations

import pytest
import redis.asyncio

from policystore.backends.redis import RedisBackend, RedisKeys
from policystore.errors import PolicyValidationError
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
