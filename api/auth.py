"""Who is calling: bearer tokens, from a users file (embedded) or RS256 JWTs (production).

Embedded default: `<data dir>/users.yaml` maps token digests (`sha256:<hex>`) to a user
id, a role and the programs the user works in; `carepath up` creates it on first run with
one demo user per role, and `carepath users ...` (cli.users) adds, rotates and removes
users, printing each new token once. Failed authentications are limited per client
address (api.limits). Production: set CAREPATH_JWKS_URL (with CAREPATH_JWT_ISSUER and
CAREPATH_JWT_AUDIENCE) and tokens are JWTs signed by the identity provider, whose role
and programs are claims.

401 means "we do not know who you are" (no token, or a token that does not verify; the
answer carries `WWW-Authenticate`); 403 means "we know, and you may not". The route
dependencies here (`current_user`, `require_role`, `require_actor`) are what every router
uses; the authenticator is found on `app.state.authenticator`.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies' signatures at
# run time, and they name local dependencies.

import asyncio
import hashlib
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
import yaml
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.limits import AuthFailureLimiter
from api.problems import ProblemError
from domain.actors import Actor, Role
from domain.vocabulary import Ref
from workers.errors import StartupError
from workers.settings import Settings

ALL_PROGRAMS = "*"
REALM = "carepath"
# Every human role reads episodes (within its programs); the system role is the timers'.
STAFF_ROLES = (
    Role.INTAKE_COORDINATOR,
    Role.CLINICIAN,
    Role.SUPERVISOR,
    Role.CLINICAL_DIRECTOR,
)
READ_ROLES = (*STAFF_ROLES, Role.AUDITOR)
# The demo users `carepath up` writes on first run: user id and programs per role.
DEMO_USERS: dict[Role, tuple[str, tuple[str, ...]]] = {
    Role.INTAKE_COORDINATOR: ("ivy.intake", (ALL_PROGRAMS,)),
    # Scoped to show program scoping: adolescent episodes are invisible to this clinician.
    # The drill program (programs/drill.yaml) is there to try escalations on.
    Role.CLINICIAN: ("cal.clinician", ("adult-iop", "drill")),
    Role.SUPERVISOR: ("sue.supervisor", (ALL_PROGRAMS,)),
    Role.CLINICAL_DIRECTOR: ("dan.director", (ALL_PROGRAMS,)),
    Role.AUDITOR: ("ada.auditor", (ALL_PROGRAMS,)),
}


class User(BaseModel):
    """An authenticated caller: user id, role and the programs they work in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # What the domain accepts as an actor's id (one line, no control characters).
    user_id: Ref
    role: Role
    programs: tuple[str, ...] = Field(
        default=(ALL_PROGRAMS,), description='Program ids; "*" means every program.'
    )

    @property
    def all_programs(self) -> bool:
        return ALL_PROGRAMS in self.programs

    def may_access(self, program_id: str | None) -> bool:
        """Whether the user works in this program (auditors read every program)."""
        if self.all_programs or self.role is Role.AUDITOR:
            return True
        return program_id is not None and program_id in self.programs

    def program_filter(self) -> tuple[str, ...] | None:
        """The programs a listing is limited to, or None for all of them."""
        if self.all_programs or self.role is Role.AUDITOR:
            return None
        return self.programs

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, role=self.role)


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> User:
        """The user the token stands for; raises a 401 `ProblemError` if it stands for none."""
        ...


def unauthenticated(detail: str, error: str | None = None) -> ProblemError:
    """A 401 problem with the RFC 6750 challenge; `error` is e.g. "invalid_token"."""
    challenge = f'Bearer realm="{REALM}"'
    if error:
        challenge += f', error="{error}"'
    return ProblemError(
        "InvalidToken" if error else "AuthenticationRequired",
        detail,
        401,
        headers={"WWW-Authenticate": challenge},
    )


# --- the users file -------------------------------------------------------------------


class _UserEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # What the domain accepts as an actor's id (one line, no control characters).
    user_id: Ref
    role: Role
    programs: tuple[str, ...] = Field(default=(ALL_PROGRAMS,), min_length=1)


class _UsersDocument(BaseModel):
    """`tokens:` maps a token (or `sha256:<hex digest of a token>`) to its user."""

    model_config = ConfigDict(extra="forbid")

    tokens: dict[str, _UserEntry]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UsersFileAuthenticator:
    """Tokens from a YAML users file, re-read when the file changes.

    A token is found by its SHA-256 digest, never compared with stored tokens: how long
    a lookup takes says nothing about how much of a guess was right.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._by_digest: dict[str, User] = {}
        self._load()

    def _load(self) -> None:
        try:
            stat = self._path.stat()
            text = self._path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StartupError(
                f"users file {self._path} cannot be read ({exc.strerror or exc}); "
                "run `carepath up` once to create it, or set CAREPATH_USERS_FILE"
            ) from None
        self._by_digest = parse_users(text, str(self._path))
        self._stamp = (stat.st_mtime_ns, stat.st_size)

    def _reload_if_changed(self) -> None:
        try:
            stat = self._path.stat()
        except OSError:
            return  # keep the users we have; the file may be being replaced
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            try:
                self._load()
            except StartupError:
                return  # a half-written edit: keep the last valid users

    async def authenticate(self, token: str) -> User:
        self._reload_if_changed()
        user = self._by_digest.get(_digest(token))
        if user is None:
            raise unauthenticated(
                "the bearer token is not known: use a token `carepath users add` or "
                "`carepath users rotate` printed",
                "invalid_token",
            )
        return user


def parse_users(text: str, where: str) -> dict[str, User]:
    """Token digest -> user, from a users file's text; raises `StartupError` naming the fault."""
    try:
        document = _UsersDocument.model_validate(yaml.safe_load(text) or {"tokens": {}})
    except (yaml.YAMLError, ValidationError) as exc:
        reason = str(exc).splitlines()[0] if isinstance(exc, yaml.YAMLError) else _first(exc)
        raise StartupError(f"users file {where} is invalid: {reason}") from None
    users: dict[str, User] = {}
    for key, entry in document.tokens.items():
        if entry.role is Role.SYSTEM:
            raise StartupError(
                f"users file {where}: user {entry.user_id!r} has role 'system', which only "
                "the timers use; give a staff or auditor role"
            )
        digest = key.removeprefix("sha256:") if key.startswith("sha256:") else _digest(key)
        users[digest] = User(user_id=entry.user_id, role=entry.role, programs=entry.programs)
    return users


def _first(exc: ValidationError) -> str:
    err = exc.errors()[0]
    # The location of a bad entry is its token: never print it.
    loc = ".".join("<token>" if i == 1 else str(p) for i, p in enumerate(err["loc"]))
    return f"{loc}: {err['msg']}"


USERS_FILE_HEADER = (
    "# CarePath users: sha256:<digest of a bearer token> -> user id, role, programs\n"
    "# ('*' = every program). Manage them with `carepath users add|rotate|remove|list`,\n"
    "# which print a new token once; the API re-reads this file when it changes. Only\n"
    "# token digests are kept here: a token that is lost is rotated, not recovered.\n"
)
# Beside the users file `carepath up` creates: the demo users' plain tokens, written once.
DEMO_TOKENS_FILE = "demo-tokens.txt"


def token_digest(token: str) -> str:
    """The key a users file holds for a token: `sha256:<hex digest>`."""
    return "sha256:" + _digest(token)


def new_token() -> str:
    """A fresh bearer token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` at once (a reader sees the old or the new file), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def ensure_users_file(
    path: Path, demo_tokens_file: Path | None = None
) -> tuple[bool, dict[Role, str]]:
    """Create the users file with one demo user per role unless it exists.

    The file holds only the tokens' digests. Returns whether it was created and, only
    then, each demo user's plain token (what the banner prints once); they are also
    written to `demo_tokens_file` (default: `demo-tokens.txt` beside the users file,
    mode 0600) for the demo's tools. An existing file is left alone and no token is
    returned: `carepath users rotate` issues new ones.
    """
    if path.exists():
        return False, {}
    tokens = {role: new_token() for role in DEMO_USERS}
    entries = {
        token_digest(tokens[role]): {
            "user_id": user_id,
            "role": role.value,
            "programs": list(programs),
        }
        for role, (user_id, programs) in DEMO_USERS.items()
    }
    demo_file = demo_tokens_file or path.parent / DEMO_TOKENS_FILE
    write_private(demo_file, _demo_tokens_text(tokens))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(USERS_FILE_HEADER + yaml.safe_dump({"tokens": entries}, sort_keys=False))
    return True, tokens


def _demo_tokens_text(tokens: dict[Role, str]) -> str:
    lines = [
        "# CarePath demo tokens: role, user id, bearer token. Written once by `carepath up`",
        "# when it created the users file, which keeps only their digests. For the demo",
        "# only: delete this file, and issue tokens with `carepath users rotate USER_ID`.",
    ]
    lines += [f"{role.value} {DEMO_USERS[role][0]} {token}" for role, token in tokens.items()]
    return "\n".join(lines) + "\n"


def demo_tokens(data_dir: Path) -> dict[Role, str]:
    """The demo users' plain tokens `carepath up` wrote into `data_dir` ({} if none).

    From `demo-tokens.txt`; a users file written before digests were the default still
    holds plain tokens, and those are read from it instead.
    """
    found: dict[Role, str] = {}
    try:
        text = (data_dir / DEMO_TOKENS_FILE).read_text(encoding="utf-8")
    except OSError:
        return _plain_tokens(data_dir / "users.yaml")
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and not line.startswith("#"):
            try:
                found.setdefault(Role(fields[0]), fields[2])
            except ValueError:
                continue
    return found


def _plain_tokens(path: Path) -> dict[Role, str]:
    """The first plain-text token of each role in an old users file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    found: dict[Role, str] = {}
    for token, entry in (document.get("tokens") or {}).items():
        if isinstance(entry, dict) and not str(token).startswith("sha256:"):
            try:
                found.setdefault(Role(str(entry.get("role"))), str(token))
            except ValueError:
                continue
    return found


# --- JWTs against a JWKS ----------------------------------------------------------------


class JwtAuthenticator:
    """RS256 JWTs verified with the identity provider's published keys (fetched, cached).

    The token must carry `sub`, `exp`, the configured `iss` and `aud`, and a role claim;
    a programs claim (a list, or "*") scopes the user, and is "*" when absent only for
    auditors.
    """

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        *,
        role_claim: str = "carepath_role",
        programs_claim: str = "carepath_programs",
        cache_seconds: float = 300,
    ) -> None:
        self._jwks = jwt.PyJWKClient(
            jwks_url, cache_jwk_set=True, lifespan=max(cache_seconds, 1), timeout=5
        )
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._programs_claim = programs_claim

    async def authenticate(self, token: str) -> User:
        try:
            # PyJWKClient fetches with urllib; a thread keeps the event loop free.
            key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError:
            raise ProblemError(
                "ServiceUnavailable",
                "the identity provider's keys (CAREPATH_JWKS_URL) cannot be fetched; "
                "try again shortly",
                503,
            ) from None
        except jwt.PyJWTError:
            raise unauthenticated(
                "the bearer token is not a JWT signed by a known key: sign in again",
                "invalid_token",
            ) from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise unauthenticated("the token has expired: sign in again", "invalid_token") from None
        except jwt.PyJWTError as exc:
            raise unauthenticated(
                f"the token is not valid here ({type(exc).__name__}): sign in again",
                "invalid_token",
            ) from None
        return self._user(claims)

    def _user(self, claims: dict[str, Any]) -> User:
        return user_from_claims(claims, self._role_claim, self._programs_claim)


def user_from_claims(claims: dict[str, Any], role_claim: str, programs_claim: str) -> User:
    """The user verified claims stand for: `sub`, a role claim and a programs claim (a
    list, or "*"; absent means none, except for auditors, who read every program).

    The API's JWTs and the console's OpenID Connect ID tokens map alike. Raises a 403
    `ProblemError` for a claim naming no CarePath role, a 401 for an unusable subject.
    """
    try:
        role = Role(str(claims.get(role_claim)))
    except ValueError:
        role = Role.SYSTEM
    if role is Role.SYSTEM:
        raise ProblemError(
            "AccessDenied",
            f"the token's {role_claim!r} claim names no CarePath role: ask the "
            "administrator to assign one of " + ", ".join(r.value for r in READ_ROLES),
            403,
        )
    raw = claims.get(programs_claim)
    if raw is None:
        programs: tuple[str, ...] = (ALL_PROGRAMS,) if role is Role.AUDITOR else ()
    elif isinstance(raw, str):
        programs = (raw,)
    else:
        programs = tuple(str(p) for p in raw)
    try:
        return User(user_id=str(claims["sub"]), role=role, programs=programs)
    except ValidationError:
        # An empty, overlong or control-character subject cannot name an actor.
        raise unauthenticated(
            "the token's subject is not a usable user id: ask the administrator",
            "invalid_token",
        ) from None


def build_authenticator(settings: Settings) -> Authenticator:
    """The authenticator the settings configure; raises `StartupError` if incomplete."""
    if settings.jwks_url:
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise StartupError(
                "CAREPATH_JWKS_URL is set but CAREPATH_JWT_ISSUER or CAREPATH_JWT_AUDIENCE is "
                "not: set both, so tokens issued for other services are refused"
            )
        return JwtAuthenticator(
            settings.jwks_url,
            settings.jwt_issuer,
            settings.jwt_audience,
            role_claim=settings.jwt_role_claim,
            programs_claim=settings.jwt_programs_claim,
            cache_seconds=settings.jwks_cache_seconds,
        )
    return UsersFileAuthenticator(settings.effective_users_file)


class NoUsers:
    """Refuses every token: the authenticator of an app built without one."""

    async def authenticate(self, token: str) -> User:
        raise unauthenticated("no users are configured: set CAREPATH_USERS_FILE", "invalid_token")


# --- route dependencies -----------------------------------------------------------------

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A token `carepath users add|rotate` printed (`carepath up` prints a demo "
    "token per role when it creates the users file) "
    "or, in production, a JWT from the identity provider.",
)


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> User:
    """The authenticated caller; 401 without a valid bearer token."""
    known: User | None = getattr(request.state, "user", None)
    if known is not None:
        return known  # already authenticated for this request (api.command_routes.role_first)
    if credentials is None:
        raise unauthenticated(
            "this endpoint needs a bearer token: send 'Authorization: Bearer <token>' "
            "(`carepath users add|rotate` prints a token)"
        )
    authenticator: Authenticator = getattr(request.app.state, "authenticator", NoUsers())
    # Guessing tokens is slowed down per address (api.limits.AuthFailureLimiter): 429.
    limiter: AuthFailureLimiter | None = getattr(request.app.state, "auth_limiter", None)
    address = request.client.host if request.client else "(unknown)"
    if limiter is not None:
        limiter.check(address)
    try:
        user = await authenticator.authenticate(credentials.credentials)
    except ProblemError as refused:
        if limiter is not None and refused.status == 401:
            limiter.failed(address)
        raise
    # The access log (api.access) records who made the request.
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: Role) -> Callable[..., Awaitable[User]]:
    """A dependency: the caller, if their role is one of `roles`; else 403."""
    allowed = frozenset(roles)

    async def dependency(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise forbidden(user, allowed)
        return user

    return dependency


def require_actor(*roles: Role) -> Callable[..., Awaitable[Actor]]:
    """Like `require_role`, giving the caller as a domain `Actor` (e.g. for exports)."""
    check = require_role(*roles)

    async def dependency(user: Annotated[User, Depends(check)]) -> Actor:
        return user.actor()

    return dependency


def forbidden(user: User, allowed: Iterable[Role]) -> ProblemError:
    names = " or ".join(sorted(role.value for role in allowed))
    return ProblemError(
        "AccessDenied",
        f"role {user.role.value!r} may not use this endpoint: ask a user with role {names}",
        403,
    )
