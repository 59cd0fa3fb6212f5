"""A thin raw-protocol test client: real HTTP and WebSocket, no SDK in between.

Server tests use it so that they check the wire protocol itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from taube.protocol.frames import (
    Ack,
    AnyServerFrame,
    Auth,
    ClientFrame,
    Error,
    GroupEvent,
    Message,
    Ready,
    Receipt,
    Send,
    Sent,
    decode_server_frame,
    encode_frame,
)
from taube.protocol.ids import uuid7
from tests.serverproc import UNIT_S

PASSWORD = "correct horse battery"


@dataclass
class Account:
    handle: str
    device: int
    token: str


async def http(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = msgspec.json.encode(body) if body is not None else None
    async with session.request(method, url, data=data, headers=headers) as response:
        raw = await response.read()
        return response.status, (msgspec.json.decode(raw) if raw else None)


async def register(session: aiohttp.ClientSession, base: str, handle: str) -> Account:
    status, body = await http(
        session, "POST", f"{base}/v1/accounts", {"handle": handle, "password": PASSWORD}
    )
    assert status == 201, body
    return Account(body["handle"], body["device"], body["token"])


async def login(session: aiohttp.ClientSession, base: str, handle: str) -> Account:
    status, body = await http(
        session, "POST", f"{base}/v1/sessions", {"handle": handle, "password": PASSWORD}
    )
    assert status == 201, body
    return Account(body["handle"], body["device"], body["token"])


@dataclass
class Wire:
    """One authenticated WebSocket connection and what arrived on it."""

    ws: aiohttp.ClientWebSocketResponse
    ready: Ready
    frames: list[AnyServerFrame] = field(default_factory=list)

    async def send_frame(self, frame: ClientFrame) -> None:
        await self.ws.send_str(encode_frame(frame).decode())

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def send(self, to: str, payload: bytes, message_id: str | None = None) -> str:
        message_id = message_id or uuid7()
        await self.send_frame(Send(id=message_id, to=to, payload=payload))
        return message_id

    async def next(self, timeout: float = 5.0) -> AnyServerFrame:
        msg = await self.ws.receive(timeout=timeout * UNIT_S)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket ended: {msg.type} {msg.data} {msg.extra}")
        frame = decode_server_frame(msg.data)
        self.frames.append(frame)
        return frame

    async def until(self, kind: type[Any], timeout: float = 5.0) -> Any:
        """The next frame of this type (other frames are kept in ``frames``)."""
        while True:
            frame = await self.next(timeout)
            if isinstance(frame, kind):
                return frame

    async def sent(self, count: int, timeout: float = 10.0) -> list[Sent]:
        return [await self.until(Sent, timeout) for _ in range(count)]

    async def error(self, timeout: float = 5.0) -> Error:
        frame: Error = await self.until(Error, timeout)
        return frame

    async def messages(self, count: int, ack: bool = True, timeout: float = 10.0) -> list[Message]:
        got: list[Message] = []
        while len(got) < count:
            frame = await self.next(timeout)
            if isinstance(frame, Message):
                got.append(frame)
                if ack:
                    await self.send_frame(Ack(seq=frame.seq))
            elif isinstance(frame, Receipt | GroupEvent) and ack:
                await self.send_frame(Ack(seq=frame.seq))
        return got

    async def close(self) -> None:
        await self.ws.close()


async def connect(
    session: aiohttp.ClientSession, ws_url: str, token: str, last_seq: int = 0
) -> Wire:
    ws = await session.ws_connect(ws_url, max_msg_size=0)
    await ws.send_str(encode_frame(Auth(token=token, last_seq=last_seq)).decode())
    msg = await ws.receive(timeout=10 * UNIT_S)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    frame = decode_server_frame(msg.data)
    assert isinstance(frame, Ready), frame
    return Wire(ws, frame)


async def quiet(wire: Wire, seconds: float = 0.3) -> list[AnyServerFrame]:
    """Frames that arrive within a short quiet period (to show nothing more comes)."""
    got: list[AnyServerFrame] = []
    try:
        while True:
            got.append(await wire.next(seconds))
    except TimeoutError:
        return got
