"""The Temporal client: the data converter every process uses, and connecting.

Every client, worker and replayer converts with pydantic and encrypts every payload and
failure detail (`data_converter`, workers.payload_codec). `PLAIN_CONVERTER` does not
encrypt: it serves only calls that carry no payload (asking about pollers).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, Interceptor
from temporalio.common import RawValue
from temporalio.contrib.pydantic import PydanticPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
)
from temporalio.converter import _data_converter as sdk_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from workers.errors import StartupError
from workers.payload_codec import ENCODING, EncryptionCodec, Keyring
from workers.settings import SEARCH_ATTRIBUTES

# The encoding converters of the SDK's pydantic payload converter, built once.
_PYDANTIC_ENCODINGS = tuple(PydanticPayloadConverter().converters.values())


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """The SDK's pydantic payload converter, every instance holding the same encoding
    converters.

    The SDK builds a payload converter afresh for every data converter it derives: the
    worker's, for each workflow activation and each completion, four for a staff
    command. The pydantic one builds a pydantic-core serializer and an empty cache of
    type adapters each time, which made a derivation take twice what it takes with the
    SDK's default converter (22.6 against 10.6 us; 9.7 us with this class).
    Its encoding converters hold no state but that cache, so sharing them converts
    exactly as before, with the cache kept warm."""

    def __init__(self) -> None:
        CompositePayloadConverter.__init__(self, *_PYDANTIC_ENCODINGS)


PLAIN_CONVERTER: DataConverter = DataConverter(
    payload_converter_class=SharedPydanticPayloadConverter
)


# The SDK's message for a payload stored elsewhere reaching a process that cannot fetch it.
UNFETCHABLE = (
    "[TMPRL1105] Detected externally stored payload(s) but external storage is not configured."
)


def external_reference(payload: Payload) -> bool:
    """Whether `payload` points at externally stored payloads (the SDK's two markers)."""
    return sdk_converter._has_reference_marker(payload) or sdk_converter._is_reference_payload(
        payload
    )


class SealingPayloadConverter(SharedPydanticPayloadConverter):
    """The shared pydantic converter that seals every payload it makes and opens every
    payload it reads, with `codec` (a subclass per keyring: `sealing_converter`).

    Encrypting here rather than in a payload codec gives the same payloads, byte for
    byte in format, with no codec for the SDK to run: the SDK applies a codec by walking
    every workflow activation and completion, payload by payload, whether the workflow
    reads a payload or not: 5-9 % of a replay's time (docs/operations.md, "Sizing").
    Here a payload is opened when the workflow converts it, and sealed when it is made.

    A `RawValue` is the payload as it came, still sealed: the SDK hands an update's
    handler the very payload its validator was given, and the handler can tell (it
    converts the payload with this converter when it needs its value). A payload
    already sealed is not sealed twice; a plain one (recorded before payloads were
    encrypted) reads as it is; one that points at external storage, which CarePath does
    not configure, is refused as the SDK refuses it."""

    codec: ClassVar[EncryptionCodec]

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        seal = self.codec.seal
        return [
            payload if payload.metadata.get("encoding") == ENCODING else seal(payload)
            for payload in super().to_payloads(values)
        ]

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        hints = type_hints or ()
        opened = []
        for index, payload in enumerate(payloads):
            if external_reference(payload):
                raise RuntimeError(UNFETCHABLE)
            raw = index < len(hints) and hints[index] is RawValue
            opened.append(payload if raw else self.codec.open(payload))
        return super().from_payloads(opened, type_hints)


def sealing_converter(keyring: Keyring) -> type[SealingPayloadConverter]:
    """A `SealingPayloadConverter` class sealing under `keyring` (the SDK builds payload
    converters from a class, with no arguments)."""
    return type(
        SealingPayloadConverter.__name__,
        (SealingPayloadConverter,),
        {"codec": EncryptionCodec(keyring), "__module__": __name__},
    )


def data_converter(keyring: Keyring) -> DataConverter:
    """Pydantic payloads, sealed under `keyring`; failure messages and stack traces move
    into the (encrypted) encoded attributes, so a failure's text is no PHI channel."""
    return dataclasses.replace(
        PLAIN_CONVERTER,
        payload_converter_class=sealing_converter(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def payload_sealer(converter: DataConverter) -> EncryptionCodec | None:
    """The codec `converter` seals its payloads with (the codec server's), if it seals."""
    made_by = converter.payload_converter_class
    if issubclass(made_by, SealingPayloadConverter):
        return made_by.codec
    return None


_INDEXED_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
}


async def connect(
    address: str,
    namespace: str,
    converter: DataConverter,
    *,
    timeout: float = 10.0,
    setting: str = "CAREPATH_TEMPORAL_ADDRESS",
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Connect to a Temporal frontend, retrying until timeout; one-line error naming the setting.

    `runtime` is the process's Temporal runtime (`workers.metrics.sdk_metrics_runtime`
    exports the SDK's metrics); None: the SDK's default runtime. `interceptors` apply to
    every call of the client and to workers built on it (the tracing interceptor, when
    tracing is on: workers.tracing).
    """
    deadline = asyncio.get_running_loop().time() + timeout
    last: Exception | None = None
    while True:
        try:
            return await Client.connect(
                address,
                namespace=namespace,
                data_converter=converter,
                runtime=runtime,
                interceptors=interceptors,
            )
        except Exception as exc:
            last = exc
        if asyncio.get_running_loop().time() >= deadline:
            reason = str(last).splitlines()[0] if last and str(last) else type(last).__name__
            raise StartupError(
                f"cannot reach Temporal at {address} ({reason}); check the server or set {setting}"
            )
        await asyncio.sleep(0.2)


async def register_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register CarePath's custom search attributes that the namespace lacks; returns those added."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as err:
        # The time-skipping test server can add attributes but not list them.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {
        name: _INDEXED_TYPES[kind]
        for name, kind in SEARCH_ATTRIBUTES.items()
        if name not in existing
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
