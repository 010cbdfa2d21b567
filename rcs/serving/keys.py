"""CurveZMQ keys: generation, loading, and the server's allow-list of client public keys.

Key files use ZeroMQ's certificate format (``zmq.auth.create_certificates``): ``PREFIX.key`` holds the
public key, ``PREFIX.key_secret`` both keys (written with mode 0600). An allow-list is a text file of Z85
public keys, one per line (anything after whitespace is ignored; lines starting with ``#`` are comments), or
a directory of ``.key`` files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from rcs.errors import ConfigError


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
    lines = ["#   ZeroMQ CURVE certificate written by `rcs keygen`", "metadata", "curve",
             f'    public-key = "{public.decode()}"']
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
