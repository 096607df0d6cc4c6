"""The console's sign-in session: a signed cookie, an idle timeout, a CSRF token.

A staff member signs in once with their token (or, with an identity provider, through
it); the console then knows them by a cookie that holds who they are (user id, role,
programs), when the session began and was last used, and the session's CSRF token. The
cookie is MAC'd (HMAC-SHA-256 under the console's secret), so it cannot be forged or
altered, and it is HttpOnly, SameSite=Strict and, behind HTTPS, Secure. No server-side
store: any API replica with the same secret serves any session.

A session ends on sign-out, after `idle` without a request, or `lifetime` after sign-in,
whichever comes first; the token itself is never kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from api.auth import User
from domain.actors import Role

COOKIE = "carepath_session"
# Form field and header that carry the CSRF token.
CSRF_FIELD = "csrf_token"
DEFAULT_IDLE_S = 30 * 60
DEFAULT_LIFETIME_S = 12 * 60 * 60
# A session's cookie is written again (its last use moved) at most this often.
_TOUCH_EVERY_S = 60


@dataclass(frozen=True)
class Session:
    user_id: str
    role: Role
    programs: tuple[str, ...]
    csrf: str
    began: float
    seen: float

    @property
    def user(self) -> User:
        return User(user_id=self.user_id, role=self.role, programs=self.programs)


class Sessions:
    """Issues and reads session cookies under one secret."""

    def __init__(
        self,
        secret: bytes,
        *,
        idle_s: float = DEFAULT_IDLE_S,
        lifetime_s: float = DEFAULT_LIFETIME_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the console's session secret must be at least 32 bytes")
        self._secret = secret
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self._clock = clock

    def begin(self, user: User) -> Session:
        now = self._clock()
        return Session(
            user_id=user.user_id,
            role=user.role,
            programs=tuple(user.programs),
            csrf=secrets.token_urlsafe(32),
            began=now,
            seen=now,
        )

    def encode(self, session: Session) -> str:
        body = json.dumps(
            {
                "u": session.user_id,
                "r": session.role.value,
                "p": list(session.programs),
                "c": session.csrf,
                "b": round(session.began, 3),
                "s": round(session.seen, 3),
            },
            separators=(",", ":"),
        ).encode()
        payload = base64.urlsafe_b64encode(body).rstrip(b"=")
        return f"{payload.decode()}.{self._mac(payload)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The cookie's session if it is genuine and neither idle nor expired."""
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload.encode())):
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(
                user_id=str(raw["u"]),
                role=Role(raw["r"]),
                programs=tuple(str(p) for p in raw["p"]),
                csrf=str(raw["c"]),
                began=float(raw["b"]),
                seen=float(raw["s"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        now = self._clock()
        if now - session.seen > self.idle_s or now - session.began > self.lifetime_s:
            return None
        return session

    def touched(self, session: Session) -> Session | None:
        """The session with its last use moved to now, if it is time to write it again."""
        now = self._clock()
        if now - session.seen < _TOUCH_EVERY_S:
            return None
        return replace(session, seen=now)

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(session.csrf, token)

    def _mac(self, payload: bytes) -> str:
        digest = hmac.new(self._secret, b"carepath console session\x00" + payload, hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
