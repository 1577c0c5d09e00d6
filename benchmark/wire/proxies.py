"""Which forward proxy, if any, the environment names for an origin, read as Python's ``urllib`` reads it.

``urllib.request.getproxies()``: ``http_proxy`` for http origins, ``https_proxy`` for https ones, the lower-case
name winning over the upper-case one (``HTTP_PROXY`` is ignored in a CGI request, where it is a client's
header); ``ALL_PROXY`` is not read (urllib does not either). ``urllib.request.proxy_bypass()``: ``no_proxy`` /
``NO_PROXY`` is a comma-separated list of host names, each also matching its subdomains (``example.com`` and
``.example.com`` both match ``api.example.com``), ``host:port`` entries, or ``*`` for every host; there are
no address ranges (CIDR). The origin is matched by its host and by ``host:port``. botocore, and so the
SageMaker target, uses the same two functions (``botocore.utils.get_environ_proxies``, on the URL's netloc).

The proxy itself must be an ``http://`` URL (a scheme-less value means ``http://``, as curl and requests read
it); ``user:password@`` in it is sent as ``Proxy-Authorization: Basic``. What a proxy does to the times:
:mod:`benchmark.wire.connection`.
"""

from __future__ import annotations

import urllib.request
from urllib.parse import unquote, urlsplit

from benchmark.wire.connection import Origin, Proxy
from catalog.errors import ConfigError, Issue


def proxy_for(origin: Origin) -> Proxy | None:
    """The proxy the environment names for ``origin``; None for a direct connection."""
    scheme = "https" if origin.tls else "http"
    url = urllib.request.getproxies().get(scheme)
    if not url:
        return None
    if urllib.request.proxy_bypass(origin.host) or urllib.request.proxy_bypass(f"{origin.host}:{origin.port}"):
        return None
    return parse_proxy(url, f"{scheme}_proxy")


def parse_proxy(url: str, variable: str) -> Proxy:
    """``http://[user:password@]host[:port]`` (port 80 when left out) as a :class:`Proxy`."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or 80
    except ValueError:
        port = 0
    redacted = f"http://{'***@' if parts.username is not None else ''}{parts.netloc.rpartition('@')[2]}"
    if parts.scheme != "http" or not parts.hostname or not port:
        shown = redacted if parts.scheme == "http" else f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        raise ConfigError([Issue(variable, shown, "must be an http:// proxy URL with a host (http://host:port)")])
    credentials = None
    if parts.username is not None or parts.password is not None:
        credentials = (unquote(parts.username or ""), unquote(parts.password or ""))
    return Proxy(parts.hostname, port, redacted, credentials)
