"""Payload encryption: AES-256-GCM under a keyring, key id in the metadata, rotation."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from testing.payload_keys import TEST_CONVERTER, TEST_KEYRING, seal_message
from workers.errors import StartupError
from workers.payload_codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    Keyring,
    PayloadDecryptionError,
    PayloadKeyError,
    new_keys_document,
    payload_keyring,
)
from workers.settings import Settings
from workers.temporal import PLAIN_CONVERTER, data_converter

MRN = "MRN-4711"


def keys(*ids: str, active: str | None = None) -> Keyring:
    return Keyring({i: bytes([n + 1]) * 32 for n, i in enumerate(ids)}, active or ids[-1])


def document(keyring_ids: dict[str, bytes], active: str | None = None) -> str:
    body: dict[str, object] = {
        "keys": {i: base64.b64encode(k).decode() for i, k in keyring_ids.items()}
    }
    if active:
        body["active"] = active
    return json.dumps(body)


def plain(text: str) -> Payload:
    [payload] = PLAIN_CONVERTER.payload_converter.to_payloads([{"client_ref": text}])
    return payload


class TestEncryptionCodec:
    async def test_given_a_payload_when_encoded_and_decoded_then_it_is_the_same_payload(
        self,
    ) -> None:
        codec = EncryptionCodec(keys("k1"))
        original = plain(MRN)

        [sealed] = await codec.encode([original])
        [opened] = await codec.decode([sealed])

        assert opened == original
        assert MRN.encode() not in sealed.SerializeToString()

    async def test_given_the_active_key_when_encoding_then_metadata_names_encoding_and_key_id(
        self,
    ) -> None:
        [sealed] = await EncryptionCodec(keys("k1", "k2")).encode([plain(MRN)])

        assert dict(sealed.metadata) == {"encoding": ENCODING, KEY_ID: b"k2"}

    async def test_given_a_rotated_keyring_when_decoding_old_payloads_then_they_stay_readable(
        self,
    ) -> None:
        [old] = await EncryptionCodec(keys("k1")).encode([plain(MRN)])
        rotated = EncryptionCodec(keys("k1", "k2", active="k2"))

        [opened] = await rotated.decode([old])
        [new] = await rotated.encode([plain(MRN)])

        assert opened == plain(MRN)
        assert new.metadata[KEY_ID] == b"k2"

    async def test_given_a_tampered_ciphertext_when_decoding_then_it_is_refused(self) -> None:
        codec = EncryptionCodec(keys("k1"))
        [sealed] = await codec.encode([plain(MRN)])
        tampered = Payload(
            metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
        )

        with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
            await codec.decode([tampered])

    async def test_given_a_payload_relabelled_to_another_key_id_when_decoding_then_refused(
        self,
    ) -> None:
        both = keys("k1", "k2", active="k1")
        [sealed] = await EncryptionCodec(both).encode([plain(MRN)])
        sealed.metadata[KEY_ID] = b"k2"

        with pytest.raises(PayloadDecryptionError):
            await EncryptionCodec(both).decode([sealed])

    async def test_given_a_retired_key_when_decoding_its_payloads_then_the_error_names_it(
        self,
    ) -> None:
        [sealed] = await EncryptionCodec(keys("k1")).encode([plain(MRN)])

        with pytest.raises(PayloadDecryptionError, match="'k1', which the keyring lacks"):
            await EncryptionCodec(keys("k2")).decode([sealed])

    async def test_given_a_payload_recorded_before_encryption_when_decoding_then_it_passes(
        self,
    ) -> None:
        [opened] = await EncryptionCodec(keys("k1")).decode([plain(MRN)])

        assert opened == plain(MRN)


class TestDataConverter:
    async def test_given_a_value_when_converted_then_only_ciphertext_leaves(self) -> None:
        converter = data_converter(keys("k1"))
        value = {"client_ref": MRN, "diagnoses": ["F33.1"]}

        [payload] = await converter.encode([value])

        assert payload.metadata["encoding"] == ENCODING
        assert MRN.encode() not in payload.SerializeToString()
        assert await converter.decode([payload], [dict]) == [value]

    async def test_given_a_failure_when_encoded_then_its_message_and_trace_are_encrypted(
        self,
    ) -> None:
        converter = data_converter(keys("k1"))
        failure = Failure()

        await converter.encode_failure(ApplicationError(f"no episode for {MRN}"), failure)

        assert failure.message == "Encoded failure"
        assert failure.encoded_attributes.metadata["encoding"] == ENCODING
        assert MRN.encode() not in failure.SerializeToString()
        decoded = await converter.decode_failure(failure)
        assert str(decoded) == f"no episode for {MRN}"


class TestKeysDocument:
    def test_given_several_keys_and_an_active_one_when_parsed_then_it_seals(self) -> None:
        text = document({"a": b"\1" * 32, "b": b"\2" * 32}, active="a")

        keyring = Keyring.from_document(text, where="doc")

        assert (keyring.active_id, keyring.key_ids) == ("a", ("a", "b"))

    def test_given_a_key_id_setting_when_parsed_then_it_overrides_the_document(self) -> None:
        text = document({"a": b"\1" * 32, "b": b"\2" * 32}, active="a")

        assert Keyring.from_document(text, active="b", where="doc").active_id == "b"

    @pytest.mark.parametrize(
        ("text", "complaint"),
        [
            ("not json", "is not JSON"),
            ("{}", '"keys"'),
            (json.dumps({"keys": {"a": "%%%"}}), "not base64"),
            (document({"a": b"\1" * 16}), "16 bytes"),
            (document({"a": b"\1" * 32, "b": b"\2" * 32}), "several keys"),
            (document({"a": b"\1" * 32}, active="z"), "'z' is not in the keyring"),
            (document({"": b"\1" * 32}), "empty or not printable"),
        ],
    )
    def test_given_a_bad_document_when_parsed_then_the_error_says_what_is_wrong(
        self, text: str, complaint: str
    ) -> None:
        with pytest.raises(PayloadKeyError, match=complaint):
            Keyring.from_document(text, where="doc")

    def test_given_a_new_document_when_parsed_then_its_one_key_is_active(self) -> None:
        keyring = Keyring.from_document(new_keys_document("first"), where="doc")

        assert keyring.key_ids == ("first",)
        assert keyring.active_id == "first"


class TestPayloadKeyring:
    def test_given_no_settings_and_the_embedded_temporal_when_started_then_a_file_is_made(
        self, tmp_path: Path
    ) -> None:
        settings = Settings(data_dir=tmp_path)

        first = payload_keyring(settings)
        again = payload_keyring(settings)

        path = tmp_path / "payload-keys.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert first.key_ids == again.key_ids

    def test_given_an_external_temporal_and_no_keys_when_started_then_the_setting_is_named(
        self, tmp_path: Path
    ) -> None:
        settings = Settings(data_dir=tmp_path, temporal_address="temporal:7233")

        with pytest.raises(StartupError, match="CAREPATH_PAYLOAD_KEYS_FILE"):
            payload_keyring(settings)

    def test_given_a_keys_file_and_a_key_id_when_started_then_that_key_seals(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "keys.json"
        path.write_text(document({"old": b"\1" * 32, "new": b"\2" * 32}, active="old"))
        settings = Settings(
            temporal_address="temporal:7233", payload_keys_file=path, payload_key_id="new"
        )

        assert payload_keyring(settings).active_id == "new"

    def test_given_inline_keys_when_started_then_they_win_over_the_file(
        self, tmp_path: Path
    ) -> None:
        settings = Settings(
            temporal_address="temporal:7233",
            payload_keys=document({"inline": b"\3" * 32}),
            payload_keys_file=tmp_path / "missing.json",
        )

        assert payload_keyring(settings).key_ids == ("inline",)

    @pytest.mark.parametrize("broken", ["missing", "bad"])
    def test_given_an_unusable_keys_file_when_started_then_a_startup_error_names_it(
        self, tmp_path: Path, broken: str
    ) -> None:
        path = tmp_path / "keys.json"
        if broken == "bad":
            path.write_text("{}")
        settings = Settings(temporal_address="temporal:7233", payload_keys_file=path)

        with pytest.raises(StartupError, match=str(path)):
            payload_keyring(settings)


class TestSealingRecordedHistories:
    async def test_given_a_failure_recorded_in_plain_when_sealed_then_the_converter_reads_it(
        self,
    ) -> None:
        failure = Failure(message=f"refused {MRN}", stack_trace="at x")

        sealed = seal_message(failure, EncryptionCodec(TEST_KEYRING))

        assert sealed == 1
        assert MRN.encode() not in failure.SerializeToString()
        assert str(await TEST_CONVERTER.decode_failure(failure)) == f"refused {MRN}"
