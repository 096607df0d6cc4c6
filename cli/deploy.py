"""`carepath deploy init [DIR]`: the secrets a container deployment starts with.

Writes into DIR (mode 0700, every file 0600) what docker-compose.yml mounts as secrets:

| file | what | read by (as `*_FILE`) |
|---|---|---|
| `chain-key` | HMAC key of the events' hash chain | worker, API, migrations |
| `checkpoint-key` | HMAC key that signs checkpoints | worker |
| `payload-keys.json` | the payload keys document (one fresh active key) | worker, API |
| `users.yaml` | the API's users file: one user per role, token digests only | API |
| `postgres-password` | superuser of CarePath's PostgreSQL (creates the roles) | carepath-db |
| `carepath-owner-password`, `carepath-app-password` | the schema owner's, the application's | carepath-db |
| `database-owner-url`, `database-url` | the same, as the URLs CarePath connects with | migrations; worker and API |
| `grafana-admin-password` | Grafana's `admin` | grafana |

and `DIR/checkpoints/` (where the worker also writes each signed checkpoint), and a
`.env` beside docker-compose.yml naming DIR and the user the containers run as (the
owner of the files, so that they can read them at mode 0600). The users' bearer tokens
are printed once, on stdout; nothing keeps them. Existing files are never replaced
unless --force is given.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from api.auth import DEMO_USERS, USERS_FILE_HEADER, new_token, token_digest
from workers.errors import StartupError
from workers.payload_codec import new_keys_document

DEFAULT_DIR = Path("secrets")
DEFAULT_ENV_FILE = Path(".env")
DEFAULT_DB_HOST = "carepath-db:5432"
DATABASE = "carepath"
OWNER_ROLE = "carepath_owner"
APP_ROLE = "carepath_app"
# The image's own user (Dockerfile): who owns the files when root runs this command.
IMAGE_UID = 10001
CHECKPOINTS = "checkpoints"
# The variables of the `.env` file docker-compose.yml reads.
ENV_DIR = "CAREPATH_COMPOSE_DIR"
ENV_UID = "CAREPATH_COMPOSE_UID"
ENV_GID = "CAREPATH_COMPOSE_GID"


@dataclass(frozen=True)
class Written:
    directory: Path
    files: tuple[Path, ...]
    tokens: dict[str, tuple[str, str]]  # user id -> (role, token)


def run(args: argparse.Namespace) -> int:
    written = init_deployment(args.dir, args.env_file, db_host=args.db_host, force=args.force)
    for user_id, (role, token) in written.tokens.items():
        print(f"{role} {user_id} {token}")
    print(
        f"carepath: wrote {len(written.files)} files into {written.directory} and "
        f"{args.env_file}; the bearer tokens above are shown once ({written.directory}/"
        "users.yaml keeps only their digests). Next: docker compose up --build",
        file=sys.stderr,
    )
    return 0


def _password() -> str:
    # URL-safe, so it goes into a postgresql:// URL as it is.
    return secrets.token_urlsafe(32)


def secret_files(db_host: str) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """File name -> content, and user id -> (role, token) of the users file's users."""
    passwords = {role: _password() for role in ("postgres", OWNER_ROLE, APP_ROLE)}
    tokens = {
        user_id: (role.value, new_token()) for role, (user_id, _programs) in DEMO_USERS.items()
    }
    users = {
        token_digest(tokens[user_id][1]): {
            "user_id": user_id,
            "role": role.value,
            "programs": list(programs),
        }
        for role, (user_id, programs) in DEMO_USERS.items()
    }
    files = {
        "chain-key": secrets.token_urlsafe(48) + "\n",
        "checkpoint-key": secrets.token_urlsafe(48) + "\n",
        "payload-keys.json": new_keys_document(),
        "users.yaml": USERS_FILE_HEADER + yaml.safe_dump({"tokens": users}, sort_keys=False),
        "postgres-password": passwords["postgres"] + "\n",
        "carepath-owner-password": passwords[OWNER_ROLE] + "\n",
        "carepath-app-password": passwords[APP_ROLE] + "\n",
        "database-owner-url": _url(OWNER_ROLE, passwords[OWNER_ROLE], db_host) + "\n",
        "database-url": _url(APP_ROLE, passwords[APP_ROLE], db_host) + "\n",
        "grafana-admin-password": _password() + "\n",
    }
    return files, tokens


def _url(role: str, password: str, db_host: str) -> str:
    return f"postgresql://{role}:{password}@{db_host}/{DATABASE}"


def init_deployment(
    directory: Path, env_file: Path, *, db_host: str = DEFAULT_DB_HOST, force: bool = False
) -> Written:
    """Write the deployment's secrets into `directory` and the compose `.env`."""
    files, tokens = secret_files(db_host)
    directory = directory.absolute()
    targets = [directory / name for name in files] + [env_file]
    existing = [str(path) for path in targets if path.exists()]
    if existing and not force:
        raise StartupError(
            f"{', '.join(existing)} already exist: they may be what a running deployment "
            "uses; pass --force to replace them (new keys make its data unreadable)"
        )
    owner = (IMAGE_UID, IMAGE_UID) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    _private_dir(directory, owner)
    _private_dir(directory / CHECKPOINTS, owner)
    for name, text in files.items():
        _write_private(directory / name, text, owner)
    env = (
        "# Written by `carepath deploy init`: where docker-compose.yml finds its secrets, and\n"
        "# the user its CarePath containers run as (the owner of those 0600 files).\n"
        f"{ENV_DIR}={directory}\n{ENV_UID}={owner[0]}\n{ENV_GID}={owner[1]}\n"
    )
    _write_private(env_file, env, None)
    return Written(directory, tuple(targets), tokens)


def _private_dir(path: Path, owner: tuple[int, int]) -> None:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)
        if os.geteuid() == 0:
            os.chown(path, *owner)
    except OSError as exc:
        raise StartupError(f"cannot create {path} ({exc.strerror or exc})") from None


def _write_private(path: Path, text: str, owner: tuple[int, int] | None) -> None:
    """Write `path` afresh with mode 0600 (never through a file an attacker placed)."""
    try:
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        if owner is not None and os.geteuid() == 0:
            os.chown(path, *owner)
    except OSError as exc:
        raise StartupError(f"cannot write {path} ({exc.strerror or exc})") from None
