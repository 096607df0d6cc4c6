"""`carepath users add|rotate|remove|list`: the users file's users and their tokens.

The users file (CAREPATH_USERS_FILE, default `<data dir>/users.yaml`) keeps only each
token's digest. `add` and `rotate` print the new token once, alone on stdout (so a script
can capture it); nobody can read it back later, so a lost token is rotated. The API
re-reads the file when it changes: a new token works at once, a rotated or removed one
stops working at once. The file is rewritten whole (readers see the old or the new
one) under a lock, so two administrators cannot lose each other's change.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from api.auth import (
    ALL_PROGRAMS,
    DEMO_TOKENS_FILE,
    READ_ROLES,
    USERS_FILE_HEADER,
    new_token,
    parse_users,
    token_digest,
    write_private,
)
from cli.episodes import print_table
from workers.errors import StartupError
from workers.settings import Settings

ROLE_NAMES = tuple(role.value for role in READ_ROLES)


def run(settings: Settings, args: argparse.Namespace) -> int:
    path = settings.effective_users_file
    if settings.jwks_url:
        print(
            f"carepath: note: CAREPATH_JWKS_URL is set, so the API uses JWTs and not {path}",
            file=sys.stderr,
        )
    with _locked(path):
        header, entries = _read(path)
        if args.users_command == "list":
            _list(entries)
            return 0
        if args.users_command == "add":
            if _of(entries, args.user_id):
                raise StartupError(
                    f"user {args.user_id!r} already exists in {path}: use "
                    f"`carepath users rotate {args.user_id}` for a new token"
                )
            entry = {
                "user_id": args.user_id,
                "role": args.role,
                "programs": list(args.programs or [ALL_PROGRAMS]),
            }
        else:
            mine = _of(entries, args.user_id)
            if not mine:
                raise StartupError(
                    f"no user {args.user_id!r} in {path}: `carepath users list` shows them"
                )
            entry = dict(entries[mine[0]])
            for key in mine:
                del entries[key]
            _forget_demo_token(path.parent / DEMO_TOKENS_FILE, args.user_id)
        token = None
        if args.users_command in ("add", "rotate"):
            token = new_token()
            entries[token_digest(token)] = entry
        text = header + yaml.safe_dump({"tokens": entries}, sort_keys=False)
        parse_users(text, str(path))  # what the API will read back must be valid
        write_private(path, text)
    if token is None:
        print(f"removed {args.user_id}: their tokens no longer authenticate", file=sys.stderr)
        return 0
    print(token)
    print(
        f"carepath: the token of {args.user_id} ({entry['role']}) above is shown once; "
        f"{path} keeps only its digest",
        file=sys.stderr,
    )
    return 0


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the users file while it is read and rewritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """The file's leading comment block and its entries (none if it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return USERS_FILE_HEADER, {}
    except OSError as exc:
        raise StartupError(f"users file {path} cannot be read ({exc.strerror})") from None
    parse_users(text, str(path))  # refuse to rewrite a file the API would refuse
    lines = text.splitlines(keepends=True)
    header = "".join(line for line in _leading_comments(lines)) or USERS_FILE_HEADER
    document = yaml.safe_load(text) or {}
    return header, dict(document.get("tokens") or {})


def _leading_comments(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("#"):
            return
        yield line


def _of(entries: dict[str, dict[str, Any]], user_id: str) -> list[str]:
    """The keys (token digests, or old plain tokens) that belong to `user_id`."""
    return [key for key, entry in entries.items() if str(entry.get("user_id")) == user_id]


def _list(entries: dict[str, dict[str, Any]]) -> None:
    rows = [
        (
            str(entry.get("user_id")),
            str(entry.get("role")),
            ",".join(entry.get("programs") or [ALL_PROGRAMS]),
            "digest" if key.startswith("sha256:") else "PLAIN (rotate it)",
        )
        for key, entry in entries.items()
    ]
    print_table(("USER ID", "ROLE", "PROGRAMS", "TOKEN KEPT AS"), sorted(rows))


def _forget_demo_token(demo_file: Path, user_id: str) -> None:
    """Drop a rotated or removed demo user's stale line from `demo-tokens.txt`."""
    try:
        lines = demo_file.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError:
        return
    kept = [line for line in lines if line.startswith("#") or line.split()[1:2] != [user_id]]
    if kept != lines:
        write_private(demo_file, "".join(kept))
