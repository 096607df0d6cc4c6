"""The test suites' payload key, and `python -m testing.payload_keys`, which seals histories.

`tests/TEST-ONLY-payload-keys.json` is a public key, committed so that the recorded
histories (tests/replay/histories) and the test servers' clients encrypt their payloads
as production does. Only tests may name it in CAREPATH_PAYLOAD_KEYS_FILE (a process that
does logs a warning: `payload_test_key_in_use`).

The committed histories were recorded before payloads were encrypted, some by older
code, and must keep replaying as that code recorded them: they are never re-recorded for
encryption. This tool seals every payload in them instead, in place, with the test key,
moving failure messages into their (sealed) encoded attributes, and leaving all else
(event ids, types, times, search attributes, headers) as it was:

    python -m testing.payload_keys tests/replay/histories/*.json

Payloads already sealed are left alone, so running it twice changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.message import Message
from temporalio.api.common.v1 import Header, Payload, SearchAttributes
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import MarkerRecordedEventAttributes
from temporalio.converter import DataConverter

from workers.payload_codec import ENCODING, EncryptionCodec, Keyring
from workers.replay import load_history, save_history
from workers.temporal import PLAIN_CONVERTER, data_converter

TEST_KEYS_FILE = Path(__file__).resolve().parent.parent / "tests" / "TEST-ONLY-payload-keys.json"
TEST_KEYRING = Keyring.from_document(
    TEST_KEYS_FILE.read_text(encoding="utf-8"), where=str(TEST_KEYS_FILE)
)
# What every test client, worker and replayer converts with.
TEST_CONVERTER: DataConverter = data_converter(TEST_KEYRING)

# A marker's details are the SDK core's own record, except a local activity's `result`,
# which the SDK encodes.
# The server reads these itself (visibility, interceptors' headers): the SDK's codec
# leaves them plain, and so does this tool.
_LEFT_PLAIN = (SearchAttributes.DESCRIPTOR.full_name, Header.DESCRIPTOR.full_name)


def seal_message(message: Message, codec: EncryptionCodec) -> int:
    """Seal every payload inside `message` in place, after moving each failure's message
    and stack trace into its encoded attributes as the data converter does now; the
    number of payloads sealed."""
    if message.DESCRIPTOR.full_name in _LEFT_PLAIN:
        return 0
    if isinstance(message, Failure):
        _encode_common_attributes(message)
    sealed = 0
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values_field = field.message_type.fields_by_name["value"]
            if values_field.message_type is None:
                continue
            items = [
                item
                for key, item in value.items()
                if not (isinstance(message, MarkerRecordedEventAttributes) and key != "result")
            ]
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if item.DESCRIPTOR.full_name == Payload.DESCRIPTOR.full_name:
                sealed += _seal_payload(item, codec)
            else:
                sealed += seal_message(item, codec)
    return sealed


def _encode_common_attributes(failure: Failure) -> None:
    """What `DefaultFailureConverterWithEncodedAttributes` writes, for a failure
    recorded without it."""
    if failure.HasField("encoded_attributes") or not (failure.message or failure.stack_trace):
        return
    [attributes] = PLAIN_CONVERTER.payload_converter.to_payloads(
        [{"message": failure.message, "stack_trace": failure.stack_trace}]
    )
    failure.encoded_attributes.CopyFrom(attributes)
    failure.message = "Encoded failure"
    failure.stack_trace = ""


def _seal_payload(payload: Payload, codec: EncryptionCodec) -> int:
    if payload.metadata.get("encoding") == ENCODING:
        return 0
    payload.CopyFrom(codec.seal(payload))
    return 1


def seal_history_file(path: Path, codec: EncryptionCodec) -> int:
    """Seal the payloads of one history file (as `workers.replay.save_history` writes
    it), in place; the number sealed."""
    history = load_history(path)
    sealed = sum(seal_message(event, codec) for event in history.events)
    if sealed:
        save_history(history, path)
    return sealed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testing.payload_keys", description=__doc__)
    parser.add_argument("histories", nargs="+", type=Path)
    args = parser.parse_args(argv)
    codec = EncryptionCodec(TEST_KEYRING)
    for path in args.histories:
        print(f"{path}: {seal_history_file(path, codec)} payload(s) sealed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
