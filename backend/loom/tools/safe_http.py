"""Fetch a URL chosen by a model or a user without letting it reach the server's own network.

Rules (every hop of a redirect chain is checked the same way):

* only ``http`` and ``https`` URLs;
* the host name is resolved here, once per hop, and **every** address it resolves to must be
  public: loopback, link-local (``169.254.0.0/16``, ``fe80::/10``), private (``10/8``,
  ``172.16/12``, ``192.168/16``, ``fc00::/7``), unspecified, multicast, reserved, site-local and
  other non-global ranges are refused, as are IPv6 forms that embed such an IPv4 address
  (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4,
  Teredo). Odd IPv4 spellings (``2130706433``, ``0x7f000001``, ``127.1``) are checked as the
  system resolver interprets them, because the address checked is the address resolved;
* the connection goes to the vetted address itself (DNS pinning). The request URL's host is
  replaced by the IP while the original name is sent in the ``Host`` header and, for HTTPS, as
  the TLS SNI name (httpcore's ``sni_hostname`` request extension), which is also the name the
  certificate is verified against. A DNS answer that changes between the check and the connect
  (rebinding) therefore cannot redirect the connection: there is no second lookup;
* redirects are followed by hand (at most ``max_redirects``), each new URL vetted again;
* the body is streamed and reading stops at ``settings.fetch_max_bytes`` *decoded* bytes: a
  ``Content-Encoding`` chain is decoded here, layer by layer, never past the cap
  (:func:`loom.tools._http.read_capped`), so a small compressed body cannot inflate in memory;
  the whole fetch, redirects included, is bounded by ``settings.tool_timeout_seconds``;
* proxy environment variables are ignored (a proxy would bypass the checks).

``settings.fetch_allow_private=True`` turns the address checks off (development and tests).
The resolver and the address check can be injected, which is how tests exercise a "public"
first hop without internet access.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
from langchain_core.tools import ToolException

from loom.settings import Settings
from loom.tools._http import ACCEPT_ENCODING, USER_AGENT, content_encodings, read_capped

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
"""``(host, port) -> addresses``; raise ``OSError`` when the name does not resolve."""
AddressCheck = Callable[[IPAddress, int], str | None]
"""``(address, port) -> None`` to allow, or a phrase saying why not (``"a loopback address"``)."""

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


class FetchRefused(ToolException):
    """The URL (or a redirect target) may not be fetched; the message starts with ``refused:``."""


@dataclass(frozen=True)
class FetchResult:
    url: str
    """The final URL, after redirects."""
    status_code: int
    content_type: str
    """Media type without parameters, lower case (``""`` when the server sent none)."""
    body: bytes
    truncated: bool
    """True when the body was cut at ``fetch_max_bytes``."""
    encoding: str
    redirects: tuple[str, ...] = ()
    content_encodings: tuple[str, ...] = ()
    """The ``Content-Encoding`` chain the body was decoded from."""

    @property
    def text(self) -> str:
        return self.body.decode(self.encoding, errors="replace")


def _plain_category(ip: IPAddress) -> str | None:
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped form of", ip.ipv4_mapped
    if ip in _NAT64:
        return "a NAT64 form of", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4 form of", ip.sixtofour
    if ip.teredo is not None:
        return "a Teredo form of", ip.teredo[1]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return "an IPv4-compatible form of", ipaddress.IPv4Address(int(ip))
    return None


def address_category(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be fetched from (``"a loopback address"``), or ``None`` if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            form, v4 = embedded
            inner = _plain_category(v4)
            if inner is not None:
                return f"{form} {v4}, {inner}"
    return _plain_category(ip)


def default_address_check(ip: IPAddress, port: int) -> str | None:
    """The address policy used unless ``fetch_allow_private`` is set: public addresses only."""
    return address_category(ip)


def allow_all_addresses(ip: IPAddress, port: int) -> str | None:
    return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve ``host`` the way a socket connect would (``getaddrinfo``), literals included."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def _parse(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused(f"refused: {url!s} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        shown = parsed.scheme or "a relative URL"
        raise FetchRefused(f"refused: only http and https URLs may be fetched, not {shown}")
    if not parsed.raw_host:
        raise FetchRefused(f"refused: {url!s} has no host")
    return parsed


def _is_literal(host: str, address: IPAddress) -> bool:
    """True when ``host`` is ``address`` written as an IP literal (not a name resolving to it)."""
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return host if url.port is None else f"{host}:{url.port}"


class SafeFetcher:
    """Fetches public http(s) URLs under the rules in this module's docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        address_check: AddressCheck | None = None,
        max_redirects: int = 5,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``resolver`` and ``address_check`` replace the system resolver and the public-only
        policy (which ``fetch_allow_private`` otherwise selects); ``verify`` is httpx's TLS
        verification (an ``SSLContext`` trusting a private CA, for instance)."""
        self._verify = verify
        self._timeout = settings.tool_timeout_seconds
        self._max_bytes = settings.fetch_max_bytes
        self._resolve = resolver or system_resolver
        if address_check is None:
            address_check = (
                allow_all_addresses if settings.fetch_allow_private else default_address_check
            )
        self._check = address_check
        self._max_redirects = max_redirects

    async def fetch(self, url: str) -> FetchResult:
        """GET ``url``. Raises :class:`FetchRefused`, ``TimeoutError``, ``httpx.HTTPError``."""
        async with (
            asyncio.timeout(self._timeout),
            httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                trust_env=False,
                follow_redirects=False,
                verify=self._verify,
                headers={
                    "User-Agent": USER_AGENT,
                    "Accept-Encoding": ACCEPT_ENCODING,
                    "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
                },
            ) as client,
        ):
            return await self._fetch(client, _parse(url))

    async def _fetch(self, client: httpx.AsyncClient, current: httpx.URL) -> FetchResult:
        redirects: list[str] = []
        while True:
            address = await self._vet(current)
            response = await self._send(client, current, address)
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                await response.aclose()
                if len(redirects) >= self._max_redirects:
                    raise FetchRefused(
                        f"refused: too many redirects (more than {self._max_redirects})"
                    )
                try:
                    target = current.join(location)
                except (httpx.InvalidURL, ValueError):
                    raise FetchRefused(f"refused: invalid redirect target {location!r}") from None
                redirects.append(str(target))
                current = _parse(target)
                continue
            if response.status_code >= 400:
                await response.aclose()
                raise ToolException(f"{current} answered HTTP {response.status_code}")
            body, truncated = await read_capped(response, self._max_bytes)
            content_type = response.headers.get("content-type", "")
            return FetchResult(
                url=str(current),
                status_code=response.status_code,
                content_type=content_type.split(";", 1)[0].strip().lower(),
                body=body,
                truncated=truncated,
                encoding=response.charset_encoding or "utf-8",
                redirects=tuple(redirects),
                content_encodings=tuple(content_encodings(response.headers)),
            )

    async def _vet(self, url: httpx.URL) -> IPAddress:
        host = url.raw_host.decode("ascii")
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await self._resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise ToolException(f"could not resolve {host}: {exc}") from None
        if not addresses:
            raise ToolException(f"could not resolve {host}")
        for address in addresses:
            reason = self._check(address, port)
            if reason is None:
                continue
            if _is_literal(host, address):
                raise FetchRefused(f"refused: {host} is {reason}")
            raise FetchRefused(f"refused: {host} resolves to {address}, {reason}")
        return addresses[0]

    async def _send(
        self, client: httpx.AsyncClient, url: httpx.URL, address: IPAddress
    ) -> httpx.Response:
        pinned = url.copy_with(host=str(address))
        extensions: dict[str, str] = {}
        host = url.raw_host.decode("ascii")
        if url.scheme == "https" and not _is_literal(host, address):
            extensions["sni_hostname"] = host
        request = client.build_request(
            "GET", pinned, headers={"Host": _host_header(url)}, extensions=extensions
        )
        return await client.send(request, stream=True)
