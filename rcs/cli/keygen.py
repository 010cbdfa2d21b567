"""``rcs keygen OUT_PREFIX``: write a CurveZMQ key pair (``OUT_PREFIX.key``, ``OUT_PREFIX.key_secret``)."""

from __future__ import annotations

import argparse
import sys

from rcs.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prefix", help="output path prefix; writes PREFIX.key and PREFIX.key_secret (0600)")


def run(args: argparse.Namespace) -> int:
    from rcs.serving import keys

    try:
        public_path, secret_path = keys.generate(args.prefix)
    except ConfigError as e:
        raise SystemExit(f"rcs keygen: {e}") from None
    public = keys.load(public_path).public.decode()
    sys.stdout.write(f"{public}\n")
    sys.stderr.write(
        f"wrote {public_path} (public) and {secret_path} (secret, 0600); "
        "add the public key line above to the server's --allow file\n"
    )
    return 0
