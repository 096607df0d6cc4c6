"""Payload encryption: every payload CarePath hands to Temporal is AES-256-GCM ciphertext.

Workflow inputs, update arguments and results, activity inputs and outputs, query
answers, memos and failure details are sealed by `EncryptionCodec` on their way to the
Temporal server (the payload converter calls it: workers.temporal.SealingPayloadConverter),
so its database, its UI and `temporal workflow show` see `binary/encrypted` payloads
only. The codec server (`api.codec_routes`) decodes them for authenticated staff.

Each encrypted payload is the whole original payload (metadata and data), serialised,
sealed under the keyring's active key with a fresh 96-bit nonce; its metadata names the
encoding and the key id, which is also bound to the ciphertext as associated data. A
keyring holds every key still needed to read history: rotating adds a key and makes it
the active one, older payloads stay readable under their own key id (docs/payload-encryption.md).

Payloads without the `binary/encrypted` encoding (histories recorded before encryption
was turned on) decode as they are, so running episodes continue across the upgrade.

Where the keys come from (`payload_keyring`): CAREPATH_PAYLOAD_KEYS (the keys document
inline), else CAREPATH_PAYLOAD_KEYS_FILE, else - with the embedded Temporal dev server
only - `<data dir>/payload-keys.json`, generated once (mode 0600). The document is JSON:

    {"active": "2026-05", "keys": {"2026-05": "<base64 of 32 random bytes>"}}

CAREPATH_PAYLOAD_KEY_ID, when set, names the active key instead of `active`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from workers.errors import StartupError
from workers.settings import Settings

log = structlog.get_logger("carepath.payload_codec")

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
KEYS_FILE = "payload-keys.json"


class PayloadKeyError(ValueError):
    """A keys document that cannot be used (bad JSON, a key of the wrong size, ...)."""


class PayloadDecryptionError(Exception):
    """An encrypted payload that cannot be opened: unknown key id, or tampered with."""


class Keyring:
    """The payload keys by id, and which one seals new payloads."""

    def __init__(self, keys: Mapping[str, bytes], active: str) -> None:
        if not keys:
            raise PayloadKeyError("the keyring holds no key")
        for key_id, key in keys.items():
            if not key_id or not key_id.isprintable():
                raise PayloadKeyError(f"key id {key_id!r} is empty or not printable")
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"key {key_id!r} has {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
        if active not in keys:
            raise PayloadKeyError(
                f"the active key {active!r} is not in the keyring ({', '.join(sorted(keys))})"
            )
        self.active_id = active
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._ciphers))

    def cipher(self, key_id: str) -> AESGCM | None:
        return self._ciphers.get(key_id)

    @classmethod
    def from_document(cls, text: str, *, active: str | None = None, where: str) -> Keyring:
        """Parse a keys document; `active` (CAREPATH_PAYLOAD_KEY_ID) overrides its own."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise PayloadKeyError(f"{where} is not JSON ({exc})") from None
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, dict) or not entries:
            raise PayloadKeyError(f'{where} needs "keys": {{"<key id>": "<base64 key>", ...}}')
        keys: dict[str, bytes] = {}
        for key_id, encoded in entries.items():
            try:
                keys[str(key_id)] = base64.b64decode(str(encoded), validate=True)
            except (binascii.Error, ValueError):
                raise PayloadKeyError(f"key {key_id!r} in {where} is not base64") from None
        chosen = active or document.get("active")
        if chosen is None and len(keys) == 1:
            chosen = next(iter(keys))
        if not isinstance(chosen, str):
            raise PayloadKeyError(
                f'{where} holds several keys: name the active one ("active", or '
                "CAREPATH_PAYLOAD_KEY_ID)"
            )
        try:
            return cls(keys, chosen)
        except PayloadKeyError as err:
            raise PayloadKeyError(f"{where}: {err}") from None


def new_keys_document(key_id: str | None = None) -> str:
    """A keys document with one fresh random key, active (what `carepath up` generates)."""
    key_id = key_id or datetime.now(UTC).strftime("%Y-%m-%d")
    key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")
    return json.dumps({"active": key_id, "keys": {key_id: key}}, indent=1) + "\n"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, under the keyring's active key."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        key_id = self.keyring.active_id
        cipher = self.keyring.cipher(key_id)
        assert cipher is not None  # the keyring checked its active key
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode("utf-8"))
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID: key_id.encode("utf-8")},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # recorded before payloads were encrypted
        key_id = payload.metadata.get(KEY_ID, b"").decode("utf-8", errors="replace")
        cipher = self.keyring.cipher(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload sealed under key {key_id!r}, which the keyring lacks (it holds "
                f"{', '.join(self.keyring.key_ids)}): add that key to the payload keys"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode("utf-8"))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key {key_id!r} does not authenticate: it was altered, "
                "or sealed with another key of that id"
            ) from None
        opened = Payload()
        opened.ParseFromString(plain)
        return opened


# The committed test key's ids (tests/TEST-ONLY-payload-keys.json): that key is public.
TEST_KEY_PREFIX = "test-only"


def payload_keyring(settings: Settings) -> Keyring:
    """The keyring this process uses; StartupError names the setting to fix."""
    keyring = _configured_keyring(settings)
    if any(key_id.startswith(TEST_KEY_PREFIX) for key_id in keyring.key_ids):
        log.warning(
            "payload_test_key_in_use",
            detail="the test key is public: it serves the test suite only",
        )
    return keyring


def _configured_keyring(settings: Settings) -> Keyring:
    active = settings.payload_key_id
    try:
        if settings.payload_keys is not None:
            return Keyring.from_document(
                settings.payload_keys.get_secret_value(),
                active=active,
                where="CAREPATH_PAYLOAD_KEYS",
            )
        if settings.payload_keys_file is not None:
            return _read_keys_file(settings.payload_keys_file, active)
        if settings.embedded_temporal:
            return _read_keys_file(_embedded_keys_file(settings.data_dir / KEYS_FILE), active)
    except PayloadKeyError as err:
        raise StartupError(f"payload keys: {err}") from None
    raise StartupError(
        "no payload keys: set CAREPATH_PAYLOAD_KEYS_FILE to a keys document "
        '({"active": "<id>", "keys": {"<id>": "<base64 of 32 random bytes>"}}), '
        "see docs/payload-encryption.md"
    )


def _read_keys_file(path: Path, active: str | None) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(
            f"cannot read the payload keys file {path} ({exc.strerror or exc}): "
            "check CAREPATH_PAYLOAD_KEYS_FILE"
        ) from None
    return Keyring.from_document(text, active=active, where=str(path))


def _embedded_keys_file(path: Path) -> Path:
    """Create the dev stack's keys file once (mode 0600); its path either way."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    except OSError as exc:
        raise StartupError(
            f"cannot create the payload keys file {path} ({exc.strerror or exc}): "
            "make the data dir writable or set CAREPATH_PAYLOAD_KEYS_FILE"
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(new_keys_document())
    log.info("payload_keys_generated", path=str(path))
    return path
