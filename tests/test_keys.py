"""Session keys: URL origins normalised with yarl, ClientSession kwargs compared by value or identity."""

from __future__ import annotations

import copy
import pickle

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, MultiDict
from yarl import URL

from asynctools._keys import make_key, parse_origin


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://API.example.com:443/a", "https://api.example.com/b"),
        ("http://a.example:80", "http://a.example"),
        ("ws://a.example", "ws://a.example:80/socket"),
        ("wss://a.example", "wss://a.example:443"),
        (URL("http://a.example/x?q=1#f"), "http://user:pw@a.example/y"),
        ("http://[::1]:8080/", "http://[::1]:8080/other"),
    ],
)
def test_equivalent_urls_have_one_origin(a: str | URL, b: str) -> None:
    assert parse_origin(a) == parse_origin(b)
    assert make_key(a, {}) == make_key(b, {})


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://a.example", "https://a.example"),
        ("http://a.example", "http://a.example:8080"),
        ("http://a.example", "http://b.example"),
        ("http://a.example", "ws://a.example"),
    ],
)
def test_different_origins_differ(a: str, b: str) -> None:
    assert parse_origin(a) != parse_origin(b)
    assert make_key(a, {}) != make_key(b, {})


def test_no_url_is_its_own_key() -> None:
    assert make_key(None, {}) == make_key(None, {})
    assert make_key(None, {}) != make_key("http://a.example", {})


@pytest.mark.parametrize(
    ("url", "exc", "words"),
    [
        ("ftp://a.example", ValueError, "scheme 'ftp'"),
        ("unix:///tmp/sock", ValueError, "has no host"),
        ("/relative/path", ValueError, "has no host"),
        ("http://", ValueError, "http://"),
        (b"http://a.example", TypeError, "not bytes"),
        (42, TypeError, "str or a yarl.URL"),
    ],
)
def test_bad_urls_are_refused(url: object, exc: type[Exception], words: str) -> None:
    with pytest.raises(exc) as info:
        make_key(url, {})
    assert words in str(info.value)


def test_unknown_session_keyword_is_named() -> None:
    with pytest.raises(TypeError, match="'raise_for_stats'"):
        make_key(None, {"raise_for_stats": True})
    with pytest.raises(TypeError, match=r"'loop'.*running loop"):
        make_key(None, {"loop": None})


def test_unhashable_values_compare_by_value() -> None:
    headers = {"X-Token": "t", "Accept": ["a", "b"]}
    assert make_key(None, {"headers": headers}) == make_key(
        None, {"headers": dict(reversed(headers.items()))}
    )
    assert make_key(None, {"headers": {"X-Token": "t"}}) != make_key(None, {"headers": {"X-Token": "u"}})
    assert make_key(None, {"skip_auto_headers": ["A", "B"]}) == make_key(
        None, {"skip_auto_headers": ("A", "B")}
    )
    assert make_key(None, {"skip_auto_headers": {"A", "B"}}) == make_key(
        None, {"skip_auto_headers": {"B", "A"}}
    )


def test_multidicts_compare_by_value_and_case_insensitive_ones_ignore_case() -> None:
    assert make_key(None, {"headers": CIMultiDict(A="1")}) == make_key(None, {"headers": CIMultiDict(a="1")})
    assert make_key(None, {"headers": MultiDict(A="1")}) != make_key(None, {"headers": MultiDict(a="1")})
    both = MultiDict([("a", "1"), ("a", "2")])
    assert make_key(None, {"cookies": both}) != make_key(
        None, {"cookies": MultiDict([("a", "2"), ("a", "1")])}
    )


def test_value_types_compare_by_value() -> None:
    one = {"timeout": aiohttp.ClientTimeout(total=5, connect=1)}
    assert make_key(None, one) == make_key(None, {"timeout": aiohttp.ClientTimeout(total=5, connect=1)})
    assert make_key(None, one) != make_key(None, {"timeout": aiohttp.ClientTimeout(total=5, connect=2)})


async def test_objects_without_value_semantics_compare_by_identity() -> None:
    jar1, jar2 = aiohttp.CookieJar(), aiohttp.CookieJar()
    assert make_key(None, {"cookie_jar": jar1}) == make_key(None, {"cookie_jar": jar1})
    assert make_key(None, {"cookie_jar": jar1}) != make_key(None, {"cookie_jar": jar2})
    unhashable = bytearray(b"x")
    assert make_key(None, {"json_serialize": unhashable}) == make_key(None, {"json_serialize": unhashable})
    assert make_key(None, {"json_serialize": unhashable}) != make_key(
        None, {"json_serialize": bytearray(b"x")}
    )


async def test_a_users_connector_is_never_owned() -> None:
    connector = aiohttp.TCPConnector()
    try:
        key = make_key(None, {"connector": connector})
        assert key.session_kwargs["connector_owner"] is False
        assert make_key(None, {"connector": connector}) == key
        assert make_key(None, {"connector": connector, "connector_owner": True}).session_kwargs[
            "connector_owner"
        ]
    finally:
        await connector.close()


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=3), st.one_of(scalars, st.lists(scalars, max_size=2)), max_size=3),
)


@given(
    st.dictionaries(
        st.sampled_from(["headers", "cookies", "skip_auto_headers", "version"]), values, max_size=4
    )
)
def test_kwargs_in_any_order_give_one_key(kwargs: dict[str, object]) -> None:
    reordered = dict(reversed(list(kwargs.items())))
    assert make_key("http://h.example", kwargs) == make_key("http://h.example", reordered)
    assert hash(make_key("http://h.example", kwargs)) == hash(make_key("http://h.example", reordered))


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), min_size=1), st.text(max_size=4))
def test_any_differing_header_value_gives_another_key(headers: dict[str, str], other: str) -> None:
    name = next(iter(headers))
    changed = {**headers, name: headers[name] + other + "!"}
    assert make_key(None, {"headers": headers}) != make_key(None, {"headers": changed})


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), max_size=5))
def test_any_mapping_type_and_order_give_one_key(headers: dict[str, str]) -> None:
    from multidict import MultiDictProxy

    forms = [
        headers,
        dict(reversed(list(headers.items()))),
        MultiDict(headers),
        MultiDictProxy(MultiDict(list(reversed(list(headers.items()))))),
    ]
    keys = {make_key("http://h.example", {"headers": form}) for form in forms}
    assert len(keys) == 1


hosts = st.from_regex(r"[a-z][a-z0-9]{0,8}\.example", fullmatch=True)


@given(
    hosts,
    st.sampled_from([("http", 80), ("https", 443), ("ws", 80), ("wss", 443)]),
    st.text("abc/", max_size=6),
)
def test_equivalent_urls_give_one_origin(host: str, scheme_port: tuple[str, int], path: str) -> None:
    scheme, port = scheme_port
    plain = f"{scheme}://{host}/"
    variants = [f"{scheme}://{host.upper()}/{path}", f"{scheme}://{host}:{port}/{path}?q=1", URL(plain)]
    assert {parse_origin(v) for v in [plain, *variants]} == {(scheme, host, port)}


def test_a_key_is_its_own_copy_and_pickles_to_an_equal_key() -> None:
    key = make_key("https://a.example", {"headers": {"X-Team": "a"}})
    assert copy.copy(key) is key and copy.deepcopy(key) is key
    again = pickle.loads(pickle.dumps(key))
    assert again == key and hash(again) == hash(key)
    assert again.session_kwargs == {"headers": {"X-Team": "a"}}
