"""The guarded fetcher: http(s) only, every address a host resolves to must be public, the
connection goes to an address that was checked (no DNS rebinding), and one deadline bounds the
whole fetch (name lookups, redirects, headers and body).
"""
from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from time import monotonic

from qa.errors import IngestError, clip

USER_AGENT = "newsqa/0.1"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CONDITIONS = frozenset({"if-none-match", "if-modified-since"})  # request headers that allow a 304
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 forms that carry an IPv4 address in their last 32 bits (6to4 and mapped ones: ipaddress)
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated (RFC 4291), but still routed
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known prefix (RFC 6052)
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (RFC 2765, SIIT)
# Not globally reachable, but Python 3.11's tables call them global: local-use NAT64 (RFC 8215)
# and the deprecated site-local addresses (RFC 3879), which networks may still route inside.
_NOT_GLOBAL = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("fec0::/10"))


class Fetcher:
    """Downloads a URL for ingestion, refusing what a server-side tool must not fetch.

    Only http(s) is fetched. Each hop's host is resolved once, every address it resolves to must
    be public, and the connection goes to one of those checked addresses: a DNS answer that
    changes between the check and the connection (rebinding) cannot lead to the machine the app
    runs on or its network. Loopback, private, link-local, site-local, reserved and multicast
    addresses are refused, also inside IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 and
    6to4 IPv6 addresses, unless ``allow_private``. ``timeout`` bounds the whole fetch in seconds
    (every redirect's name lookup, the headers and the body), so a server that trickles bytes is
    cut off too.
    """

    def __init__(self, timeout: float = 30, max_bytes: int = 5_000_000,
                 allow_private: bool = False, max_redirects: int = 5) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.allow_private = allow_private
        self.max_redirects = max_redirects

    @functools.cached_property
    def _tls(self) -> ssl.SSLContext:
        """Certificate-checking TLS whose sockets keep the deadline (made on the first https)."""
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        return context

    def fetch(self, url: str) -> tuple[bytes, str, str]:
        """``(body, content_type, final_url)``; ``IngestError`` for refused or failed requests."""
        response = self.get(url)
        return response.body, response.content_type, response.url

    def get(self, url: str, headers: Mapping[str, str] | None = None,
            deadline: float | None = None) -> Response:
        """The response to a GET of ``url`` with extra request ``headers``; ``IngestError`` for
        refused or failed requests. A 304 is an answer only to a conditional request (one with
        ``If-None-Match`` or ``If-Modified-Since``): the resource has not changed since.

        ``deadline``, a ``monotonic()`` time, ends the fetch sooner than ``timeout`` would: a
        feed poll shares its own with every page it fetches (``qa.ingest.feeds.poll``)."""
        end = monotonic() + self.timeout
        limit = f"the limit of {self.timeout:g} s"
        if deadline is not None and deadline < end:
            end, limit = deadline, "the deadline it was given"
        current = url
        for _ in range(self.max_redirects + 1):
            hop = self._check(current, end, limit)
            try:
                response, body = self._get(hop, end, headers or {})
            except TimeoutError:
                raise IngestError(f"{clip(url)} took longer than {limit}.") from None
            except (OSError, http.client.HTTPException) as err:
                reason = err or type(err).__name__
                raise IngestError(f"{clip(url)} could not be fetched ({clip(reason)}).") from None
            location = response.headers.get("Location")
            if response.status in REDIRECT_CODES and location:
                current = urllib.parse.urljoin(current, location)
                continue
            asked = _CONDITIONS & {name.lower() for name in headers or {}}
            if not (200 <= response.status < 300 or (response.status == 304 and asked)):
                raise IngestError(f"{clip(url)} answered HTTP {response.status} "
                                  f"({clip(response.reason)}).")
            if len(body) > self.max_bytes:
                raise IngestError(
                    f"{clip(url)} is larger than the limit of {self.max_bytes:,} bytes.")
            return Response(body, response.headers.get("Content-Type", ""), current,
                            response.status,
                            {name.lower(): value for name, value in response.headers.items()})
        raise IngestError(f"{clip(url)} redirects more than {self.max_redirects} time(s).")

    def check_url(self, url: str) -> _Hop:
        """The request for ``url``, its host resolved once (within ``timeout``) and every
        address checked.

        Raises ``IngestError`` unless ``url`` is http(s) on a host this fetcher may reach.
        """
        return self._check(url, monotonic() + self.timeout, f"the limit of {self.timeout:g} s")

    def _check(self, url: str, deadline: float, limit: str) -> _Hop:
        """``check_url`` with the host resolved by ``deadline`` (a ``monotonic()`` time), which
        ``limit`` names in the error when it passes first."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError as err:  # a bad port or IPv6 literal
            raise IngestError(f"{clip(url)} is not a valid URL ({clip(err)}).") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise IngestError(f"{clip(url)} is not an http or https URL.")
        if not parts.hostname:
            raise IngestError(f"{clip(url)} has no host name.")
        if port is None:
            port = http.client.HTTPS_PORT if scheme == "https" else http.client.HTTP_PORT
        try:
            infos = _resolve(parts.hostname, port, deadline)
        except TimeoutError:
            raise IngestError(f"{clip(url)}: resolving the host {clip(parts.hostname)} took "
                              f"longer than {limit}.") from None
        if not infos:
            raise IngestError(f"{clip(url)}: the host {clip(parts.hostname)} cannot be resolved.")
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            inner = _ipv4_inside(address)
            if not (self.allow_private or _is_public(inner or address)):
                shown = f"{inner} (inside {address})" if inner else address
                raise IngestError(f"{clip(url)} resolves to the non-public address {shown}; "
                                  "fetching it is not allowed.")
        return _Hop(host=parts.hostname, port=port, tls=scheme == "https",
                    target=urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")),
                    addresses=tuple((info[0], info[4]) for info in infos))

    def _get(self, hop: _Hop, deadline: float, headers: Mapping[str, str]
             ) -> tuple[http.client.HTTPResponse, bytes]:
        """One GET; the body (up to one byte over the limit) is read only for a 2xx answer."""
        connection = _PinnedConnection(hop, deadline, self._tls if hop.tls else None)
        try:
            connection.request("GET", hop.target, headers={"User-Agent": USER_AGENT, **headers})
            response = connection.getresponse()
            ok = 200 <= response.status < 300
            return response, response.read(self.max_bytes + 1) if ok else b""
        finally:
            connection.close()


@dataclass(frozen=True)
class Response:
    """What ``Fetcher.get`` received: a 2xx answer, or a 304 (with no body) to a conditional
    request. ``url`` is the final one, after redirects; header names are lower-case."""

    body: bytes
    content_type: str
    url: str
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Hop:
    """One request of a fetch, with the addresses its host resolved to when it was checked."""

    host: str
    port: int
    tls: bool
    target: str  # path and query, for the request line
    addresses: tuple[tuple[int, tuple], ...]  # (family, socket address), in resolver order


def _ipv4_inside(address: _IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 or 6to4
    IPv6 address: packets to it end up there, so it is the one to judge."""
    if address.version == 4:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if (address in _NAT64 or address in _IPV4_TRANSLATED
            or (address in _IPV4_COMPATIBLE and int(address) > 1)):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _is_public(address: _IPAddress) -> bool:
    # is_global is False for loopback, private, link-local and unspecified addresses, and for
    # IPv4's reserved ones
    return (address.is_global and not address.is_multicast
            and not any(address in network for network in _NOT_GLOBAL))


def _resolve(host: str, port: int, deadline: float) -> list[tuple]:
    """``getaddrinfo`` of ``host``, waited for only until ``deadline``; [] for a name that does
    not resolve. The system resolver takes no timeout from its caller, so the lookup runs in a
    daemon thread that is left to the resolver's own timeout when the deadline passes first:
    a slow name server cannot hold a fetch past its limit."""
    answer: list[tuple] = []

    def lookup() -> None:
        try:
            answer.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, ValueError):  # gaierror, or a name IDNA cannot encode
            pass

    thread = threading.Thread(target=lookup, name="newsqa-resolve", daemon=True)
    thread.start()
    thread.join(_remaining(deadline))
    if thread.is_alive():
        raise TimeoutError(f"resolving {host} took past the deadline")
    return answer


def _remaining(deadline: float) -> float:
    """Seconds left before ``deadline``; ``TimeoutError`` once it has passed."""
    left = deadline - monotonic()
    if left <= 0:
        raise TimeoutError("the fetch deadline has passed")
    return left


class _DeadlineMixin:
    """Every receive waits only until the fetch's deadline. A timeout per call starts again with
    each byte, so a server trickling a byte every few seconds could hold a fetch for hours."""

    deadline: float | None = None

    def recv_into(self, buffer: memoryview | bytearray, *args: int) -> int:
        if self.deadline is not None:
            self.settimeout(_remaining(self.deadline))  # type: ignore[attr-defined]
        return super().recv_into(buffer, *args)  # type: ignore[misc]


class _DeadlineSocket(_DeadlineMixin, socket.socket):
    """A TCP socket whose receives end at the fetch's deadline."""


class _DeadlineSSLSocket(_DeadlineMixin, ssl.SSLSocket):
    """A TLS socket whose receives end at the fetch's deadline."""


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP(S) to an address checked beforehand, never to a second DNS answer. The URL's host
    name still goes into the Host header and the TLS server name, and the certificate is
    checked against it."""

    def __init__(self, hop: _Hop, deadline: float, tls: ssl.SSLContext | None) -> None:
        super().__init__(hop.host, hop.port)
        if tls is not None:
            self.default_port = http.client.HTTPS_PORT  # the Host header leaves out :443
        self._hop, self._deadline, self._tls = hop, deadline, tls

    def connect(self) -> None:
        sock: socket.socket = _connect(self._hop.addresses, self._deadline)
        if self._tls is not None:
            sock.settimeout(_remaining(self._deadline))  # bounds the handshake
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
            sock.deadline = self._deadline  # type: ignore[attr-defined]
        self.sock = sock


def _connect(addresses: tuple[tuple[int, tuple], ...], deadline: float) -> _DeadlineSocket:
    """A TCP connection to the first checked address that accepts one, as
    ``socket.create_connection`` would make, but without resolving the host again."""
    error: OSError = OSError("no address to connect to")
    for family, sockaddr in addresses:
        sock = _DeadlineSocket(family, socket.SOCK_STREAM)
        sock.deadline = deadline
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(sockaddr)
            return sock
        except TimeoutError:
            sock.close()
            raise
        except OSError as err:
            sock.close()
            error = err
    raise error
