"""The thin Vonage client: the only module that imports the Vonage SDK.

It sends one SMS through the SDK's Messages API models and maps every failure
to one of four project exceptions, so no route knows the SDK's classes.

Retries follow one rule: only failures where Vonage certainly did not accept
the message (connection refused, connect timeout, 429, 503) are retried, with
exponential backoff and jitter inside the caller's deadline, honouring
Retry-After. The Messages API has no idempotency key, so a retry after a read
timeout or a 500/502/504 could send a paid duplicate: those are never retried.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from requests.structures import CaseInsensitiveDict
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from vonage import Auth, HttpClientOptions
from vonage_application import Application
from vonage_http_client import HttpClient
from vonage_http_client.errors import HttpRequestError
from vonage_messages import Messages, Sms, WebhookVersion

from app.config import ConfigError

CONNECT_TIMEOUT_SECONDS = 3.05
JWT_TTL_SECONDS = 15 * 60
MAX_ATTEMPTS = 5
POOL_SIZE = 64

log = logging.getLogger(__name__)


class VonageError(Exception):
    """Base: `maybe_sent` says whether Vonage might have accepted the message."""

    maybe_sent = False
    status_code: int | None = None

    def __init__(self, detail: str, *, status_code: int | None = None, retry_after: float = 0):
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code
        self.retry_after = retry_after


class VonageRejected(VonageError):
    """Vonage refused the message (4xx): certainly not sent, never retried."""


class VonageUnavailable(VonageError):
    """Unreachable, overloaded or not configured: certainly not sent."""


class VonageFailed(VonageError):
    """A 5xx answer or a broken connection after the request went out: maybe sent."""

    maybe_sent = True


class VonageTimeout(VonageError):
    """No answer within the timeout after the request went out: maybe sent."""

    maybe_sent = True


class _UnreadableAnswer(Exception):
    """A 2xx whose body is not `{"message_uuid": "..."}`: Vonage may have sent it."""

    def __init__(self, status_code: int):
        super().__init__(f"Vonage answered {status_code} without a message_uuid")
        self.status_code = status_code


class _Transient(Exception):
    """Certainly not accepted and worth another try."""

    def __init__(self, cause: VonageError):
        super().__init__(cause.detail)
        self.cause = cause


def load_private_key(pem_text: str):
    """The parsed key (PKCS#8 or PKCS#1 PEM); fails early on a bad one."""
    return serialization.load_pem_private_key(pem_text.encode(), password=None)


def pkcs8_pem(key) -> str:
    """The key as PKCS#8 PEM, the only string form the SDK's Auth takes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class _SingleShotHttpClient(HttpClient):
    """The SDK's HTTP client with two of its habits removed.

    Upstream `make_request` re-sends a POST when the server disconnects (which
    can duplicate a paid SMS) and writes each call's JWT into a dict shared by
    every thread. This one sends exactly once with headers of its own.

    It also signs each call's JWT with a key parsed once: the SDK hands PyJWT
    the PEM text, which is parsed and checked again on every send (about 40 ms
    of CPU for an RSA-2048 key, measured by the benchmark).
    """

    def __init__(
        self,
        auth: Auth,
        options: HttpClientOptions,
        timeouts: tuple[float, float],
        *,
        signing_key,
        ca_bundle: str = "",
    ):
        super().__init__(auth, options)
        self._timeouts = timeouts
        self._signing_key = signing_key
        # What requests would read from the environment on every call (proxies,
        # REQUESTS_CA_BUNDLE, ~/.netrc: ~0.5 ms of CPU per send), read once here.
        # A .netrc entry for the host no longer replaces the JWT either.
        self._session.trust_env = False
        self._proxies = requests.utils.get_environ_proxies(f"https://{options.api_host}")
        self._session.proxies = self._proxies
        # True: certifi's bundle.
        self._verify: str | bool = ca_bundle or _environ_ca_bundle() or True
        self._adapter = requests.adapters.HTTPAdapter(
            pool_connections=4, pool_maxsize=POOL_SIZE, max_retries=0
        )
        self._session.mount("https://", self._adapter)
        # The headers a Session would send (its defaults under the SDK's own), merged once.
        self._base_headers = dict(
            requests.sessions.merge_setting(
                self._headers, self._session.headers, dict_class=CaseInsensitiveDict
            )
        )

    def make_request(
        self,
        request_type,
        host,
        request_path="",
        params=None,
        auth_type="jwt",
        sent_data_type="json",
        token=None,
    ):
        headers = {
            **self._base_headers,
            "Authorization": b"Bearer " + self._jwt().encode(),
            "Content-Type": "application/json",
        }
        prepared = requests.PreparedRequest()
        prepared.prepare(
            method=request_type, url=f"https://{host}{request_path}", headers=headers, json=params
        )
        with self._send(prepared) as response:
            answer = self._parse_response(response)
            uuid_ = answer.get("message_uuid") if isinstance(answer, dict) else None
            if not (isinstance(uuid_, str) and uuid_):
                raise _UnreadableAnswer(response.status_code)
            return answer

    def _send(self, prepared: requests.PreparedRequest) -> requests.Response:
        """The request through the adapter, the response's body read.

        What `Session.request` adds around the adapter was ~0.1 ms of CPU per send
        and nothing this client uses: the environment is read once above, no hook
        or cookie is wanted, and a redirect is not followed (an answer to a POST that
        may have sent a paid SMS is never re-sent elsewhere; a 3xx is a failure that
        may have sent, as any answer that is neither 2xx nor 4xx).
        """
        response = self._adapter.send(
            prepared,
            stream=False,
            timeout=self._timeouts,
            verify=self._verify,
            cert=None,
            proxies=self._proxies,
        )
        response.content  # noqa: B018 - read now, as Session.send does: a broken body is a transport error
        return response

    def _jwt(self) -> str:
        """The claims the SDK's JwtClient sets, signed RS256 with the parsed key."""
        issued_at = int(time.time())
        claims = {
            "application_id": self._auth.application_id,
            "iat": issued_at,
            "jti": str(uuid.uuid4()),
            "exp": issued_at + JWT_TTL_SECONDS,
        }
        return jwt.encode(claims, self._signing_key, algorithm="RS256")


def _environ_ca_bundle() -> str:
    """The bundle requests itself would take from the environment."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or ""


@dataclass(frozen=True)
class SentMessage:
    message_uuid: str
    attempts: int


class VonageClient:
    def __init__(
        self,
        *,
        application_id: str,
        private_key: str,
        api_host: str,
        timeout: float,
        ca_bundle: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = timeout
        self.api_host = api_host
        self._sleep = sleep
        key = load_private_key(private_key)
        auth = Auth(application_id=application_id, private_key=pkcs8_pem(key))
        options = HttpClientOptions(api_host=api_host, max_retries=0)
        connect = min(CONNECT_TIMEOUT_SECONDS, timeout)
        http = _SingleShotHttpClient(
            auth, options, (connect, timeout), signing_key=key, ca_bundle=ca_bundle
        )
        self._ca_bundle = ca_bundle
        self._messages = Messages(http)

    def send_sms(
        self, *, to: str, sender: str, text: str, client_ref: str, deadline: float
    ) -> SentMessage:
        """Send once, retrying only certain non-acceptance before `deadline` (monotonic)."""
        # Pinned: the status webhooks for our sends come in the v1 shape we parse,
        # whatever version the Vonage application is set to.
        message = Sms(
            to=to,
            from_=sender,
            text=text,
            client_ref=client_ref,
            webhook_version=WebhookVersion.V1,
        )
        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            wait=_wait_honouring_retry_after,
            stop=stop_after_attempt(MAX_ATTEMPTS) | _stop_at(deadline),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._send_once(message)
        except _Transient as transient:
            raise self._naming_host(transient.cause) from None
        except VonageError as error:
            raise self._naming_host(error) from None
        return SentMessage(response.message_uuid, retrying.statistics.get("attempt_number", 1))

    def _naming_host(self, error: VonageError) -> VonageError:
        """The error with the host it came from: a send that reached the real API
        when the simulator was meant (or the reverse) says so."""
        error.detail = f"{error.detail} (Vonage host: {self.api_host})"
        error.args = (error.detail,)
        return error

    def _send_once(self, message: Sms):
        try:
            return self._messages.send(message)
        except HttpRequestError as error:
            raise _from_http_error(error.response) from None
        except _UnreadableAnswer as error:
            raise VonageFailed(str(error), status_code=error.status_code) from None
        except requests.RequestException as error:
            raise _from_transport_error(error) from None
        except ConnectionRefusedError:
            raise _Transient(VonageUnavailable("could not connect to Vonage")) from None
        except OSError:
            # requests could not read the CA bundle; nothing was sent.
            raise VonageUnavailable(
                f"the CA bundle {self._ca_bundle or '(REQUESTS_CA_BUNDLE)'} cannot be read"
            ) from None


def _from_http_error(response: requests.Response) -> Exception:
    status = response.status_code
    detail = _reason(response)
    if status in (429, 503):
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        return _Transient(VonageUnavailable(detail, status_code=status, retry_after=retry_after))
    if 400 <= status < 500:
        return VonageRejected(detail, status_code=status)
    return VonageFailed(detail, status_code=status)


def _from_transport_error(error: requests.RequestException) -> Exception:
    if isinstance(error, requests.ConnectTimeout):
        return _Transient(VonageUnavailable("connection to Vonage timed out"))
    if isinstance(error, requests.ReadTimeout):
        return VonageTimeout("Vonage did not answer in time")
    if isinstance(error, requests.exceptions.SSLError):
        return VonageUnavailable("TLS handshake with Vonage failed")
    reason = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    if isinstance(error, requests.ConnectionError) and (
        isinstance(reason, NewConnectionError | ConnectionRefusedError)
        or "connection refused" in str(error).lower()
    ):
        # Refused: nothing reached Vonage, however the error was wrapped.
        return _Transient(VonageUnavailable("could not connect to Vonage"))
    return VonageFailed("the connection to Vonage broke after the request was sent")


def _reason(response: requests.Response) -> str:
    """Vonage's own words: `title: detail` of its problem body, else the status."""
    try:
        body = response.json()
    except ValueError:
        return f"Vonage answered {response.status_code}"
    if not isinstance(body, dict):
        return f"Vonage answered {response.status_code}"
    parts = [str(body[key]) for key in ("title", "detail") if body.get(key)]
    invalid = body.get("invalid_parameters")
    if isinstance(invalid, list):
        parts += [
            f"{item.get('name')}: {item.get('reason')}"
            for item in invalid
            if isinstance(item, dict)
        ]
    return ": ".join(parts) if parts else f"Vonage answered {response.status_code}"


# A longer Retry-After is read as this: it is passed on to our caller, and `inf`
# (which float() reads) once made the answer a 500.
MAX_RETRY_AFTER_SECONDS = 3600.0


def _retry_after_seconds(value: str | None) -> float:
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return 0.0
    return min(seconds, MAX_RETRY_AFTER_SECONDS) if seconds > 0 else 0.0


# 0.25 s, 0.5 s, 1 s, 2 s (each plus up to 0.25 s of jitter), as long as the
# deadline allows: a 429 without Retry-After (Vonage's own has none) gets time to clear.
_backoff = wait_exponential_jitter(multiplier=0.25, max=4.0, jitter=0.25)


def _wait_honouring_retry_after(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    retry_after = error.cause.retry_after if isinstance(error, _Transient) else 0.0
    return max(retry_after, _backoff(state))


def _stop_at(deadline: float):
    def stop(state: RetryCallState) -> bool:
        return time.monotonic() + (state.upcoming_sleep or 0) >= deadline

    return stop


def build_client(settings, *, sleep: Callable[[float], None] = time.sleep) -> VonageClient | None:
    """The client for these settings, or None when Vonage is not configured;
    `sleep` is how it waits between retries."""
    if not settings.vonage_configured:
        return None
    logging.getLogger("vonage").setLevel(logging.WARNING)
    try:
        private_key = settings.read_private_key()
    except OSError as error:
        raise ConfigError(f"VONAGE_PRIVATE_KEY_PATH cannot be read: {error.strerror}") from None
    try:
        return VonageClient(
            application_id=settings.vonage_application_id,
            private_key=private_key,
            api_host=settings.vonage_api_host,
            timeout=settings.vonage_timeout_seconds,
            ca_bundle=settings.vonage_ca_bundle,
            sleep=sleep,
        )
    except (ValueError, TypeError):
        raise ConfigError("the Vonage private key is not a valid unencrypted PEM key") from None


def application_api(settings) -> Application:
    """The SDK's Application API (account credentials), for the operator CLI."""
    auth = Auth(api_key=settings.vonage_api_key, api_secret=settings.vonage_api_secret)
    # The Application API lives on api.nexmo.com whatever Messages host is set.
    options = HttpClientOptions(timeout=max(1, math.ceil(settings.vonage_timeout_seconds)))
    return Application(HttpClient(auth, options))
