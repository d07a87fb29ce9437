"""The webhook verifier against fixed vectors."""

import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.webhooks.signature import (
    FUTURE_SKEW_SECONDS,
    InvalidSignature,
    MissingSignature,
    bearer_token,
    sign,
    verify,
)

SECRET = "fixed-vector-secret-0123456789abcdef-0123456789abcdef-0123456789"
OTHER = "another-secret-0123456789abcdef-xyz"
BODY = b'{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","status":"delivered"}'
NOW = 1_800_000_000
MAX_AGE = 300


def token(claims, secret=SECRET, algorithm="HS256", **kwargs):
    return jwt.encode(claims, secret, algorithm=algorithm, **kwargs)


def claims(**overrides):
    base = {"iat": NOW, "payload_hash": hashlib.sha256(BODY).hexdigest(), "iss": "Vonage"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def check(tok, body=BODY, secrets=(SECRET,)):
    return verify(tok, body, secrets=secrets, max_age=MAX_AGE, now=NOW)


def test_valid_token_passes():
    assert check(token(claims()))["iss"] == "Vonage"


def test_sign_produces_a_token_verify_accepts():
    assert (
        check(sign(BODY, SECRET, issued_at=NOW))["payload_hash"] == hashlib.sha256(BODY).hexdigest()
    )


def test_wrong_secret_fails():
    with pytest.raises(InvalidSignature):
        check(token(claims(), secret=OTHER))


def test_previous_secret_is_accepted_during_rotation():
    assert check(token(claims(), secret=OTHER), secrets=(SECRET, OTHER))


def test_tampered_body_fails():
    with pytest.raises(InvalidSignature, match="payload_hash"):
        check(token(claims()), body=BODY.replace(b"delivered", b"rejected"))


def test_missing_payload_hash_fails():
    with pytest.raises(InvalidSignature, match="payload_hash"):
        check(token(claims(payload_hash=None)))


def test_missing_iat_fails():
    with pytest.raises(InvalidSignature):
        check(token(claims(iat=None)))


@pytest.mark.parametrize(
    ("iat", "ok"),
    [
        (NOW - MAX_AGE, True),
        (NOW - MAX_AGE - 1, False),
        (NOW + FUTURE_SKEW_SECONDS, True),
        (NOW + FUTURE_SKEW_SECONDS + 1, False),
    ],
)
def test_iat_window_edges(iat, ok):
    tok = token(claims(iat=iat))
    if ok:
        assert check(tok)
    else:
        with pytest.raises(InvalidSignature):
            check(tok)


def test_non_numeric_iat_fails():
    with pytest.raises(InvalidSignature):
        check(token(claims(iat="yesterday")))


def test_alg_none_fails():
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(InvalidSignature):
        check(unsigned)


def test_hs512_with_the_right_secret_fails():
    with pytest.raises(InvalidSignature):
        check(token(claims(), algorithm="HS512"))


def test_rs256_token_fails():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidSignature):
        check(jwt.encode(claims(), key, algorithm="RS256"))


@pytest.mark.parametrize("garbage", ["", "garbage", "a.b.c", "eyJ.eyJ.sig", "é.é.é", "x" * 5000])
def test_garbage_tokens_fail_cleanly(garbage):
    with pytest.raises(InvalidSignature):
        check(garbage)


def test_expired_exp_claim_fails():
    with pytest.raises(InvalidSignature):
        verify(
            token(claims(exp=int(time.time()) - 10)),
            BODY,
            secrets=(SECRET,),
            max_age=MAX_AGE,
            now=NOW,
        )


def test_missing_header_is_distinguished_from_a_bad_one():
    with pytest.raises(MissingSignature):
        bearer_token(None)
    for header in ("", "Basic abc", "Bearer", "Bearer   "):
        with pytest.raises(InvalidSignature):
            bearer_token(header)
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"


def test_empty_secrets_never_verify():
    with pytest.raises(InvalidSignature):
        verify(token(claims(), secret=OTHER), BODY, secrets=("",), max_age=MAX_AGE, now=NOW)


@pytest.mark.parametrize("iat", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_iat_fails(iat):
    """NaN compares false with everything: without a check it passes both window tests."""
    with pytest.raises(InvalidSignature, match="iat"):
        check(token(claims(iat=iat)))


def test_a_day_old_token_passes_with_the_default_window():
    """Vonage retries for 24 h and does not document re-signing the retry."""
    from app.config import Settings

    old = token(claims(iat=NOW - 24 * 3600))
    max_age = Settings().webhook_max_age_seconds
    assert verify(old, BODY, secrets=(SECRET,), max_age=max_age, now=NOW)
    with pytest.raises(InvalidSignature, match="too old"):
        verify(
            token(claims(iat=NOW - max_age - 1)), BODY, secrets=(SECRET,), max_age=max_age, now=NOW
        )


def test_claims_pyjwt_validates_are_still_validated():
    """The pinned HS256 path hands tokens with exp/nbf/aud/sub/jti to PyJWT's checks."""
    later = int(time.time()) + 3600
    assert check(token(claims(exp=later)))
    for refused in (
        claims(nbf=later),
        claims(aud="someone-else"),
        claims(sub=42),
        claims(jti=7),
        claims(exp="tomorrow"),
    ):
        with pytest.raises(InvalidSignature, match="invalid token"):
            check(token(refused))


def raw_token(header: bytes, payload: bytes, secret: str = SECRET) -> str:
    """A token signed as given, for shapes PyJWT's encoder refuses to make."""
    parts = [
        jwt.utils.base64url_encode(header).decode(),
        jwt.utils.base64url_encode(payload).decode(),
    ]
    mac = hmac.new(secret.encode(), ".".join(parts).encode(), hashlib.sha256).digest()
    return ".".join([*parts, jwt.utils.base64url_encode(mac).decode()])


def test_a_header_with_extra_fields_still_verifies_and_a_bad_kid_fails():
    payload = json.dumps(claims()).encode()
    assert check(raw_token(b'{"alg":"HS256","typ":"JWT","kid":"k1"}', payload))
    with pytest.raises(InvalidSignature):
        check(raw_token(b'{"alg":"HS256","kid":5}', payload))


def test_a_changed_signature_or_claims_segment_fails():
    header, payload, signature = token(claims()).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    other_payload = token(claims(iss="Other")).split(".")[1]
    for forged in (f"{header}.{payload}.{flipped}", f"{header}.{other_payload}.{signature}"):
        with pytest.raises(InvalidSignature, match="signature does not match"):
            check(forged)


def test_a_payload_that_is_not_a_json_object_fails():
    for payload in (b"[1, 2]", b"not json"):
        with pytest.raises(InvalidSignature):
            check(raw_token(b'{"alg":"HS256","typ":"JWT"}', payload))
