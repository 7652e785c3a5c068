"""Who is calling: an API key, the ``opengpts_user_id`` cookie (development), a JWT, or an
OIDC token.

Every mode turns a request into a :class:`User`; missing or bad credentials raise
:class:`~loom.errors.Unauthorized` (401). In every mode, ``Authorization: Bearer loom_sk_...``
is first checked against the personal API keys (:mod:`loom.storage.api_keys`) and, when it is
one, authenticates as the key's user before any JWT/OIDC parsing. Clients of foreign
protocols (``/v1``) authenticate with :meth:`Authenticator.authenticate_client`: an API key,
or in the JWT/OIDC modes a token; never the development cookie.

A token's own ``alg`` header never chooses the verification method: only algorithms on the
configured allow-list are accepted, and each family is verified with its own kind of key (an
HMAC secret never verifies an RS256 token and a public key is never used as an HMAC secret).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import jwt
from fastapi import Request

from loom.errors import Unauthorized
from loom.settings import Settings
from loom.storage.api_keys import API_KEY_PREFIX, ApiKey

log = logging.getLogger("loom.auth")

COOKIE_NAME = "opengpts_user_id"
MAX_USER_ID_LENGTH = 256


@dataclass(frozen=True)
class User:
    user_id: str
    # Set when the caller authenticated with an API key (which may not manage keys).
    api_key_id: uuid.UUID | None = None


class Authenticator(Protocol):
    mode: str

    async def authenticate(self, request: Request) -> User: ...

    async def authenticate_client(self, request: Request) -> User:
        """An API client (foreign protocols): an API key, or a token in JWT/OIDC modes."""
        ...


class KeyLookup(Protocol):
    async def lookup(self, secret: str) -> ApiKey | None: ...


def _storable_user_id(value: str) -> str:
    # Postgres text holds neither NUL characters nor lone surrogates (a quoted cookie may
    # carry "\000"; a token's sub is any JSON string): refuse them here instead of a 500.
    if "\x00" in value:
        raise Unauthorized("The user id contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Unauthorized("The user id is not valid Unicode") from exc
    return value


def _checked_user_id(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Unauthorized("The token has no subject (sub)")
    if len(value) > MAX_USER_ID_LENGTH:
        raise Unauthorized("The user id is too long")
    return _storable_user_id(value)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Missing bearer token (Authorization: Bearer <token>)")
    return token.strip()


class CookieAuth:
    """Development mode: the cookie is the user, exactly as OpenGPTs does it."""

    mode = "cookie"

    async def authenticate(self, request: Request) -> User:
        user_id = request.cookies.get(COOKIE_NAME)
        if not user_id or not user_id.strip():
            raise Unauthorized(f"Missing the {COOKIE_NAME} cookie")
        if len(user_id) > MAX_USER_ID_LENGTH:
            raise Unauthorized("The user id is too long")
        return User(user_id=_storable_user_id(user_id))


_FAMILIES = {"HS": "hmac", "RS": "public", "ES": "public", "PS": "public"}


def _claims_options(settings: Settings) -> dict[str, Any]:
    required = ["exp", "sub"]
    if settings.jwt_issuer or settings.oidc_issuer:
        required.append("iss")
    if settings.jwt_audience:
        required.append("aud")
    return {"require": required, "verify_aud": bool(settings.jwt_audience)}


class JwtAuth:
    """``Authorization: Bearer`` verified with a shared secret and/or a public key."""

    mode = "jwt"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._allowed = set(settings.jwt_algorithms)
        self._hmac_key = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
        self._public_key = settings.jwt_public_key

    def _key_for(self, alg: str) -> str:
        family = _FAMILIES.get(alg[:2])
        key = self._hmac_key if family == "hmac" else self._public_key if family else None
        if key is None:
            raise Unauthorized("The token's algorithm is not accepted")
        return key

    async def authenticate(self, request: Request) -> User:
        token = _bearer(request)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed token") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise Unauthorized("The token's algorithm is not accepted")
        try:
            claims = jwt.decode(
                token,
                self._key_for(alg),
                algorithms=[alg],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                options=_claims_options(self._settings),  # type: ignore[arg-type]
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("Invalid token") from exc
        return User(user_id=_checked_user_id(claims.get("sub")))


class OidcAuth:
    """Tokens signed by an OpenID provider; keys come from its JWKS URL.

    Keys are cached by ``kid``. A token naming an unknown ``kid`` triggers a refetch, at most
    once per ``oidc_jwks_refetch_seconds`` (default a minute), so a flood of forged kids cannot
    turn Loom into a load generator against the provider.
    """

    mode = "oidc"

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        assert settings.oidc_jwks_url
        self._settings = settings
        self._url = settings.oidc_jwks_url
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._allowed = {a for a in settings.jwt_algorithms if not a.startswith("HS")} or {"RS256"}

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if now - self._fetched_at < self._settings.oidc_jwks_refetch_seconds:
                return
            self._fetched_at = now
            try:
                response = await self._http.get(self._url, timeout=10)
                response.raise_for_status()
                jwks = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, jwt.PyJWTError, ValueError) as exc:
                log.warning("could not fetch JWKS from %s: %s", self._url, exc)
                return
            self._keys = {k.key_id: k for k in jwks.keys if k.key_id}

    async def _key(self, kid: str) -> jwt.PyJWK:
        if kid not in self._keys:
            await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("The token was signed with an unknown key")
        return key

    async def authenticate(self, request: Request) -> User:
        token = _bearer(request)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("Malformed token") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._allowed:
            raise Unauthorized("The token's algorithm is not accepted")
        if not isinstance(kid, str):
            raise Unauthorized("The token has no key id (kid)")
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self._settings.jwt_audience,
                issuer=self._settings.oidc_issuer,
                options=_claims_options(self._settings),  # type: ignore[arg-type]
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise Unauthorized("Invalid token") from exc
        return User(user_id=_checked_user_id(claims.get("sub")))


class ModeAuth(Protocol):
    mode: str

    async def authenticate(self, request: Request) -> User: ...


def _api_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token.startswith(API_KEY_PREFIX):
        return token
    return None


class WithApiKeys:
    """API keys first, then the configured mode."""

    def __init__(self, inner: ModeAuth, keys: KeyLookup) -> None:
        self.mode = inner.mode
        self._inner = inner
        self._keys = keys

    async def _by_key(self, secret: str) -> User:
        key = await self._keys.lookup(secret)
        if key is None:
            raise Unauthorized("Invalid API key")
        return User(user_id=key.user_id, api_key_id=key.key_id)

    async def authenticate(self, request: Request) -> User:
        secret = _api_key(request)
        if secret is not None:
            return await self._by_key(secret)
        return await self._inner.authenticate(request)

    async def authenticate_client(self, request: Request) -> User:
        secret = _api_key(request)
        if secret is not None:
            return await self._by_key(secret)
        if self.mode == "cookie":
            raise Unauthorized(
                f"Missing API key (Authorization: Bearer {API_KEY_PREFIX}...); "
                "create one with POST /api-keys"
            )
        return await self._inner.authenticate(request)


def make_authenticator(
    settings: Settings, http: httpx.AsyncClient, keys: KeyLookup
) -> Authenticator:
    builders: dict[str, Callable[[], ModeAuth]] = {
        "cookie": CookieAuth,
        "jwt": lambda: JwtAuth(settings),
        "oidc": lambda: OidcAuth(settings, http),
    }
    return WithApiKeys(builders[settings.auth](), keys)
