"""CurveZMQ keys: generation, loading, and the server's allow-list of client public keys.

Key files use ZeroMQ's certificate format (``zmq.auth.create_certificates``): ``PREFIX.key`` holds the
public key, ``PREFIX.key_secret`` both keys (written with mode 0600). An allow-list is a text file of Z85
public keys, one per line (anything after whitespace is ignored; lines starting with ``#`` are comments), or
a directory of ``.key`` files.

Both servers (``rcs serve``'s ROUTER, ``rcs robot``'s ROUTER and PUB) enable CURVE through
:func:`curve_server`, clients through :func:`curve_client`, so the wiring (ZAP authenticator, allow-list
callback, socket options) exists once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from rcs.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair, Z85-encoded (40 bytes each)."""

    public: bytes
    secret: bytes | None = None


def generate(prefix: str | Path) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` and ``PREFIX.key_secret`` (0600); returns both paths. Refuses to overwrite."""
    if not zmq.has("curve"):
        raise ConfigError("this libzmq was built without CURVE support")
    prefix = Path(prefix)
    public_path = prefix.with_name(prefix.name + ".key")
    secret_path = prefix.with_name(prefix.name + ".key_secret")
    for p in (public_path, secret_path):
        if p.exists():
            raise ConfigError(f"{p} exists; refusing to overwrite a key")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    _write(public_path, public, None, 0o644)
    _write(secret_path, public, secret, 0o600)
    return public_path, secret_path


def _write(path: Path, public: bytes, secret: bytes | None, mode: int) -> None:
    lines = [
        "#   ZeroMQ CURVE certificate written by `rcs keygen`",
        "metadata",
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")


def load(path: str | Path) -> KeyPair:
    """Load a ``.key`` or ``.key_secret`` file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load CURVE key {path}: {e}") from None
    if public is None:
        raise ConfigError(f"{path}: no public-key")
    return KeyPair(public, secret)


def load_secret(path: str | Path) -> KeyPair:
    """Load a key pair whose secret is required (``.key_secret``)."""
    pair = load(path)
    if pair.secret is None:
        raise ConfigError(f"{path}: no secret-key (pass the .key_secret file)")
    return pair


def load_allow_list(path: str | Path) -> frozenset[bytes]:
    """Z85 client public keys from a text file (one per line) or a directory of ``.key`` files."""
    p = Path(path)
    keys: set[bytes] = set()
    if p.is_dir():
        for f in sorted(p.glob("*.key")):
            keys.add(load(f).public)
    elif p.is_file():
        for n, line in enumerate(p.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):  # '#' is also a Z85 character: comments are whole lines
                continue
            line = line.split()[0]
            if len(line) != 40:
                raise ConfigError(f"{p}:{n}: {line[:50]!r} is not a 40-character Z85 public key")
            try:
                zmq.utils.z85.decode(line)
            except (ValueError, KeyError, IndexError, TypeError):
                raise ConfigError(f"{p}:{n}: {line[:50]!r} is not valid Z85") from None
            keys.add(line.encode())
    else:
        raise ConfigError(f"allow-list {p} does not exist")
    if not keys:
        raise ConfigError(f"allow-list {p} holds no keys: nobody could connect")
    return frozenset(keys)


def load_server_keys(
    secret: str | Path | None, allow: str | Path | None, names: tuple[str, str] = ("curve_secret", "allow")
) -> tuple[KeyPair | None, frozenset[bytes] | None]:
    """The server key pair and client allow-list, or ``(None, None)`` when neither is given.

    Args:
        secret: the server's ``.key_secret`` file.
        allow: the allow-list (text file of Z85 keys, or a directory of ``.key`` files).
        names: how the two options are called where they were given (for the error message).

    Raises:
        ConfigError: only one of the two given, or a file that cannot be loaded.
    """
    if bool(secret) != bool(allow):
        raise ConfigError(
            f"{names[0]} and {names[1]} go together (CURVE needs the server key pair and the allow-list of client keys)"
        )
    if not secret:
        return None, None
    assert allow is not None
    return load_secret(secret), load_allow_list(allow)


def is_loopback(endpoint: str) -> bool:
    """Whether a ``tcp://HOST:PORT`` / ``ipc://`` / ``inproc://`` endpoint is reachable only locally."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[6:].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class _AllowList:
    """ZAP credentials provider: a client key is allowed iff it is on the list."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        ok = key in self.keys
        if not ok:
            log.warning("CURVE: refused client key %s (not on the allow-list)", key.decode(errors="replace"))
        return ok


# One ZAP authenticator per context (libzmq allows one ZAP handler per context); each server socket gets its
# own ZAP domain so several servers in one process keep separate allow-lists.
_auth_lock = threading.Lock()
_authenticators: dict[int, list[Any]] = {}  # id(context) -> [ThreadAuthenticator, number of sockets using it]


def curve_server(sock: zmq.Socket, pair: KeyPair, allow: frozenset[bytes]) -> Callable[[], None]:
    """Make ``sock`` a CURVE server that accepts only client keys in ``allow``. Call before ``bind``.

    A client whose key is not on the list fails the ZAP handshake: no message of it ever reaches the socket
    (libzmq drops the connection during the handshake, before any frame is buffered).

    Returns:
        ``release()``: forget the socket's allow-list (and stop the context's authenticator when no socket
        uses it any more); call it when the socket is closed, before the context is terminated.
    """
    if pair.secret is None:
        raise ConfigError("the server CURVE key pair has no secret key")
    if not allow:
        raise ConfigError("CURVE allow-list is empty: nobody could connect")
    from zmq.auth.thread import ThreadAuthenticator

    ctx = sock.context
    domain = f"rcs-{id(sock):x}"
    with _auth_lock:
        entry = _authenticators.get(id(ctx))
        if entry is None:
            auth = ThreadAuthenticator(ctx)
            auth.start()
            entry = _authenticators[id(ctx)] = [auth, 0]
        entry[1] += 1
        entry[0].configure_curve_callback(domain, _AllowList(allow))
    sock.zap_domain = domain.encode()
    sock.curve_server = True
    sock.curve_publickey = pair.public
    sock.curve_secretkey = pair.secret
    released = False

    def release() -> None:
        nonlocal released
        with _auth_lock:
            if released:
                return
            released = True
            entry[0].credentials_providers.pop(domain, None)
            entry[1] -= 1
            if entry[1] == 0:
                entry[0].stop()
                if _authenticators.get(id(ctx)) is entry:
                    del _authenticators[id(ctx)]

    return release


def curve_client(sock: zmq.Socket, server_public: bytes, pair: KeyPair) -> None:
    """Make ``sock`` a CURVE client of a server with public key ``server_public`` (Z85). Call before ``connect``."""
    if pair.secret is None:
        raise ConfigError("the client CURVE key pair has no secret key (pass the .key_secret file)")
    sock.curve_serverkey = server_public
    sock.curve_publickey = pair.public
    sock.curve_secretkey = pair.secret
