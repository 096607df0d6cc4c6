"""The API's test users: a real users file, one user per role plus a second clinician.

`cal.clinician` works in the adult program only and `tess.teen` in the adolescent one,
so program scoping shows; everyone else works in every program.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import yaml

from api.auth import UsersFileAuthenticator

USERS: dict[str, tuple[str, str, list[str]]] = {
    "intake": ("ivy.intake", "intake_coordinator", ["*"]),
    "clinician": ("cal.clinician", "clinician", ["adult-iop"]),
    "teen_clinician": ("tess.teen", "clinician", ["adolescent-iop"]),
    "supervisor": ("sue.supervisor", "supervisor", ["*"]),
    "director": ("dan.director", "clinical_director", ["*"]),
    "auditor": ("ada.auditor", "auditor", ["*"]),
}


def token(name: str) -> str:
    return f"test-token-{name}-4f9c2d"


def bearer(name: str) -> dict[str, str]:
    """The Authorization header of the test user `name` (a key of USERS)."""
    return {"Authorization": f"Bearer {token(name)}"}


def write_users_file(directory: Path) -> Path:
    path = directory / "users.yaml"
    document = {
        "tokens": {
            token(name): {"user_id": user_id, "role": role, "programs": programs}
            for name, (user_id, role, programs) in USERS.items()
        }
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


@functools.cache
def users_authenticator() -> UsersFileAuthenticator:
    """An authenticator over a users file written once per test session."""
    return UsersFileAuthenticator(
        write_users_file(Path(tempfile.mkdtemp(prefix="carepath-users-")))
    )
