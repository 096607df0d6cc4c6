"""Who may read CarePath's data dir: its owner only.

Everything CarePath writes there (the Temporal dev server's `temporal.db`, which holds every
workflow payload, the logs, the checkpoint key, the users file, the database passwords) is
mode 0600 and the directory itself 0700. One exception: when CarePath runs as root, the
embedded PostgreSQL runs as the system user `carepath-pg` (PostgreSQL refuses root), which
must pass through the data dir to reach its own `postgres/` directory. The data dir then
belongs to that user's group with mode 0710: the group may traverse it, not list it, and
every file in it stays 0600 and root's, so the server user reaches only what it owns.
"""

from __future__ import annotations

import contextlib
import grp
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

# The system user the embedded PostgreSQL runs as when CarePath runs as root.
SERVER_SYSTEM_USER = "carepath-pg"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
# Owner: everything; the server user's group: traverse only.
SHARED_DIR_MODE = 0o710
# What every process CarePath starts creates files with: nobody else may read them.
PRIVATE_UMASK = 0o077


def server_group_id() -> int | None:
    """The group of the embedded PostgreSQL's system user, when we are root and it exists."""
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam(SERVER_SYSTEM_USER).gr_gid
    except KeyError:
        return None


def secure_data_dir(path: Path, *, for_postgres: bool = False) -> None:
    """Make `path` private (0700, or 0710 for the server user's group as root) and every
    regular file directly in it that we own 0600 (files of earlier versions included).

    The group may pass through when the embedded PostgreSQL is about to start
    (`for_postgres`) or already keeps its data there.
    """
    gid = server_group_id()
    if gid is not None and not (for_postgres or (path / "postgres").exists()):
        gid = None
    if gid is None:
        path.chmod(PRIVATE_DIR_MODE)
    else:
        os.chown(path, -1, gid)
        path.chmod(SHARED_DIR_MODE)
    uid = os.geteuid()
    for entry in path.iterdir():
        with contextlib.suppress(FileNotFoundError):
            info = entry.lstat()
            if (
                stat.S_ISREG(info.st_mode)
                and info.st_uid == uid
                and stat.S_IMODE(info.st_mode) & ~PRIVATE_FILE_MODE
            ):
                entry.chmod(PRIVATE_FILE_MODE)


def open_private_log(path: Path) -> IO[bytes]:
    """`path` opened for appending, created (or tightened) to mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return os.fdopen(fd, "ab")


def write_private_file(path: Path, text: str) -> bool:
    """Create `path` with `text`, mode 0600, unless it exists; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return True


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """Files created meanwhile (by us or the children we start) are private."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def set_private_umask() -> None:
    """In a child before exec: whatever it creates is readable by its owner only."""
    os.umask(PRIVATE_UMASK)
