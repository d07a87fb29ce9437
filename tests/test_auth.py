"""API keys: every configured key is compared, in constant time, whatever matches."""

import hmac

import pytest

from app.api import auth


@pytest.mark.parametrize("presented", ["key-one", "key-three", "nope", "k" * 5000])
def test_every_key_is_compared_whatever_matches(monkeypatch, presented):
    calls = []
    original = hmac.compare_digest

    def counting_compare(a, b):
        calls.append((len(a), len(b)))
        return original(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting_compare)
    keys = ("key-one", "key-two", "key-three")
    match = auth.matching_key(presented, keys)

    assert match == (presented if presented in keys else None)
    assert len(calls) == len(keys)
    assert set(calls) == {(32, 32)}, "digests of equal length, whatever the input"


def test_fingerprint_is_stable_and_reveals_nothing():
    assert auth.fingerprint("secret-key") == auth.fingerprint("secret-key")
    assert "secret" not in auth.fingerprint("secret-key")
    assert len(auth.fingerprint("secret-key")) == 16
