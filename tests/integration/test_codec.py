"""Payloads reach Temporal encrypted; the codec endpoints decrypt them for staff only.

Against the real dev server and PostgreSQL: an episode referred through the API leaves
no MRN in its Temporal history, and the codec endpoints (under the API's /codec, and as
`carepath codec-server` serves them) follow Temporal's codec protocol behind the API's
authentication and access log.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_users import bearer, users_authenticator
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from api.codec_routes import codec_app
from store.access_log import AccessLog
from store.db import Pool
from store.event_store import EventStore
from testing.keys import CHAIN_KEY
from testing.payload_keys import TEST_CONVERTER, TEST_KEYRING
from testing.stack import api_app
from workers.payload_codec import ENCODING, EncryptionCodec
from workers.temporal import PLAIN_CONVERTER
from workers.worker import build_worker
from workflows.messages import workflow_id_for

UI_ORIGIN = "http://127.0.0.1:18233"
MRN = "MRN-CODEC-7731"


@pytest.fixture
async def http(temporal_client: Client, db_pool: Pool) -> AsyncIterator[httpx.AsyncClient]:
    """The API (codec endpoints answering the UI origin) with a worker; no token sent."""
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(
        temporal_client, store, task_queue, users_authenticator(), codec_ui_origin=UI_ORIGIN
    )
    async with build_worker(temporal_client, store, task_queue):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://carepath.test") as c:
            yield c


async def refer(http: httpx.AsyncClient) -> str:
    answer = await http.post(
        "/episodes",
        json={"client_ref": MRN, "program_id": "adult-iop", "referral_source": "self"},
        headers=bearer("intake"),
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["episode_id"])


def payloads_of(event: HistoryEvent) -> Iterator[Payload]:
    """Every payload the SDK encodes in one history event: not search attributes, nor
    the SDK core's own marker records (a patch's id, a local activity's timing)."""
    if event.HasField("marker_recorded_event_attributes"):
        details = event.marker_recorded_event_attributes.details
        yield from details["result"].payloads if "result" in details else ()
        return
    for _, value in event.ListFields():
        yield from _walk(value)


def _walk(message: object) -> Iterator[Payload]:
    if isinstance(message, Payload):
        yield message
        return
    if not hasattr(message, "ListFields") or type(message).__name__ == "SearchAttributes":
        return
    for field, value in message.ListFields():  # type: ignore[attr-defined]
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            yield from _walk(item)


def wire(payloads: list[Payload]) -> dict[str, object]:
    return {"payloads": [json_format.MessageToDict(p) for p in payloads]}


async def sealed_mrn() -> dict[str, object]:
    return wire(await TEST_CONVERTER.encode([{"client_ref": MRN}]))


class TestPayloadsInTemporal:
    async def test_given_a_referral_through_the_api_when_the_raw_history_is_read_then_no_mrn(
        self, http: httpx.AsyncClient, temporal_client: Client
    ) -> None:
        episode_id = await refer(http)

        plain = Client(
            temporal_client.service_client,
            namespace=temporal_client.namespace,
            data_converter=PLAIN_CONVERTER,
        )
        history = await plain.get_workflow_handle(workflow_id_for(episode_id)).fetch_history()

        payloads = [p for event in history.events for p in payloads_of(event)]
        assert len(payloads) >= 3  # the workflow input, the update, its result, activities
        assert {p.metadata["encoding"] for p in payloads} == {ENCODING}
        assert MRN.encode() not in b"".join(e.SerializeToString() for e in history.events)


class TestCodecEndpoints:
    async def test_given_no_token_when_decoding_then_401(self, http: httpx.AsyncClient) -> None:
        answer = await http.post("/codec/decode", json=await sealed_mrn())

        assert answer.status_code == 401

    async def test_given_a_clinician_when_decoding_then_plaintext_and_an_access_record(
        self, http: httpx.AsyncClient, db_pool: Pool
    ) -> None:
        answer = await http.post(
            "/codec/decode",
            json=await sealed_mrn(),
            headers={**bearer("clinician"), "X-Namespace": "default"},
        )

        assert answer.status_code == 200, answer.text
        [payload] = [json_format.ParseDict(p, Payload()) for p in answer.json()["payloads"]]
        assert PLAIN_CONVERTER.payload_converter.from_payloads([payload]) == [{"client_ref": MRN}]
        row = await db_pool.fetchrow(
            "SELECT user_id, role, action, outcome FROM access_log "
            "WHERE path = '/codec/decode' ORDER BY id DESC LIMIT 1"
        )
        assert dict(row) == {
            "user_id": "cal.clinician",
            "role": "clinician",
            "action": "read",
            "outcome": "success",
        }

    async def test_given_a_clinician_when_encoding_then_the_payloads_come_back_sealed(
        self, http: httpx.AsyncClient
    ) -> None:
        plain = PLAIN_CONVERTER.payload_converter.to_payloads([{"client_ref": MRN}])

        answer = await http.post("/codec/encode", json=wire(plain), headers=bearer("clinician"))

        [sealed] = [json_format.ParseDict(p, Payload()) for p in answer.json()["payloads"]]
        assert sealed.metadata["encoding"] == ENCODING
        assert await TEST_CONVERTER.decode([sealed], [dict]) == [{"client_ref": MRN}]

    async def test_given_a_body_that_is_not_payloads_when_decoding_then_400(
        self, http: httpx.AsyncClient
    ) -> None:
        answer = await http.post(
            "/codec/decode", content=b'{"payloads": 7}', headers=bearer("clinician")
        )

        assert answer.status_code == 400

    async def test_given_a_tampered_payload_when_decoding_then_422_and_no_plaintext(
        self, http: httpx.AsyncClient
    ) -> None:
        [sealed] = await TEST_CONVERTER.encode([{"client_ref": MRN}])
        sealed.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])

        answer = await http.post("/codec/decode", json=wire([sealed]), headers=bearer("director"))

        assert answer.status_code == 422
        assert MRN not in answer.text

    async def test_given_the_ui_origin_when_it_preflights_then_cors_allows_it(
        self, http: httpx.AsyncClient
    ) -> None:
        preflight = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        }

        ours = await http.options("/codec/decode", headers={"Origin": UI_ORIGIN, **preflight})
        theirs = await http.options(
            "/codec/decode", headers={"Origin": "http://evil.test", **preflight}
        )
        elsewhere = await http.get("/episodes", headers={"Origin": UI_ORIGIN, **bearer("director")})

        assert ours.status_code == 200
        assert ours.headers["access-control-allow-origin"] == UI_ORIGIN
        assert "access-control-allow-origin" not in theirs.headers
        assert "access-control-allow-origin" not in elsewhere.headers


class TestStandaloneCodecServer:
    async def test_given_the_codec_server_when_called_at_its_root_then_it_answers_as_the_api(
        self, db_pool: Pool
    ) -> None:
        app = codec_app(
            EncryptionCodec(TEST_KEYRING), users_authenticator(), AccessLog(db_pool), UI_ORIGIN
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://codec.test") as c:
            anonymous = await c.post("/decode", json=await sealed_mrn())
            auditor = await c.post("/decode", json=await sealed_mrn(), headers=bearer("auditor"))

        assert anonymous.status_code == 401
        assert auditor.status_code == 200
        assert (
            await db_pool.fetchval(
                "SELECT count(*) FROM access_log WHERE resource = '/decode' AND user_id = 'ada.auditor'"
            )
            == 1
        )
