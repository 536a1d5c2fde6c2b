"""Which links yolohub may fetch, and what to try in their place: URL policy, mirrors, redaction.

Pure string work, no I/O: https anywhere, plain http only to loopback hosts, ``file://`` for
local stores; ``YOLOHUB_MIRRORS`` rewrites (``old-host=new-host``) are tried before each link;
credentials in a URL never reach a message or a log.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit, urlunsplit

from hub.errors import UnsafeURLError

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def strip_link(link: str) -> str:
    """MindSpore Hub writes links as ``<https://...>``; drop the brackets and whitespace."""
    link = link.strip()
    if link.startswith("<") and link.endswith(">"):
        link = link[1:-1].strip()
    return link


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """Return ``url`` if yolohub may fetch it, else raise :class:`UnsafeURLError` saying why."""
    url = strip_link(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "https" and parts.hostname:
        return url
    if scheme == "http" and parts.hostname:
        if is_loopback_host(parts.hostname):
            return url
        raise UnsafeURLError(
            f"refusing {url}: plain http is only allowed to loopback hosts (127.0.0.1, ::1, "
            "localhost); use an https:// link, or a YOLOHUB_MIRRORS rewrite to an https host"
        )
    if scheme == "file" and parts.path and parts.netloc in ("", "localhost"):
        return url
    raise UnsafeURLError(
        f"refusing {url!r}: expected an https:// link, http:// to a loopback host, or "
        "file:///absolute/path"
    )


def file_url_path(url: str) -> str:
    """The local path of a ``file://`` URL."""
    return unquote(urlsplit(strip_link(url)).path)


def apply_mirror(url: str, old: str, new: str) -> str | None:
    """Rewrite ``url`` by one ``old=new`` rule, or return None when the rule does not apply.

    ``old`` is a host (``download.example.org``), optionally with a port and a path prefix, or a
    full URL prefix (``https://host/path``).  ``new`` likewise; when it has no scheme the URL's
    scheme is kept.
    """
    url = strip_link(url)
    parts = urlsplit(url)
    if "://" in old:
        if not url.startswith(old.rstrip("/") + "/") and url != old:
            return None
        rest = url[len(old.rstrip("/")):]
    else:
        hostpath = parts.netloc + parts.path
        prefix = old.rstrip("/")
        if not (hostpath == prefix or hostpath.startswith(prefix + "/")):
            return None
        rest = hostpath[len(prefix):]
        if parts.query:
            rest += "?" + parts.query
    new = new.rstrip("/")
    if "://" not in new:
        new = f"{parts.scheme}://{new}"
    return new + rest


def candidate_urls(links: Iterable[str], mirrors: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every URL to try, in order: for each link, its mirror rewrites first, then the link."""
    out: list[str] = []
    mirrors = tuple(mirrors)
    for link in links:
        link = strip_link(link)
        for old, new in mirrors:
            rewritten = apply_mirror(link, old, new)
            if rewritten and rewritten not in out:
                out.append(rewritten)
        if link not in out:
            out.append(link)
    return out


def redact(url: str) -> str:
    """``url`` without user:password, for messages and logs."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return url
