"""A WebSocket client that can say what trio-websocket never would: raw frames (reserved
opcodes, invalid UTF-8, bad close frames), a ping after the server's close frame. wsproto
does the opening handshake and parses what the server sends; what we send is raw bytes."""

from __future__ import annotations

import struct

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING = 0x1, 0x2, 0x8, 0x9


def ws_frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0) -> bytes:
    """One client frame, masked with a zero key (so the payload bytes go out as given)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    return head + b"\0\0\0\0" + payload


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return ws_frame(OP_CLOSE, struct.pack(">H", code) + reason)


class RawClient:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.messages: list[bytes | str] = []
        self.close: tuple[int, str] | None = None  # the server's close frame, once read
        self.eof = False

    async def handshake(self) -> None:
        await self.stream.send_all(self.ws.send(Request(host="statemodel", target="/")))
        while True:
            self.ws.receive_data(await self.stream.receive_some(65536) or None)
            for event in self.ws.events():
                if isinstance(event, AcceptConnection):
                    return
                raise AssertionError(f"handshake refused: {event!r}")

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_until_close(self) -> tuple[int, str] | None:
        """Read (without answering) until the server's close frame or EOF."""
        part: list[bytes | str] = []
        while self.close is None and not self.eof:
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self.eof = True
                break
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, CloseConnection):
                    self.close = (event.code, event.reason)
                elif isinstance(event, Message):
                    part.append(event.data)
                    if event.message_finished:
                        self.messages.append(b"".join(part) if isinstance(event.data, bytes) else "".join(part))
                        part = []
        return self.close


class RawServer:
    """The server side, as loose: the opening handshake by wsproto, then frames we choose
    (it never answers a close frame unless told to)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.messages: list[bytes | str] = []
        self.close: tuple[int, str] | None = None

    async def handshake(self) -> None:
        while True:
            self.ws.receive_data(await self.stream.receive_some(65536) or None)
            for event in self.ws.events():
                if isinstance(event, Request):
                    await self.stream.send_all(self.ws.send(AcceptConnection()))
                    return

    async def send_message(self, data: bytes) -> None:
        await self.stream.send_all(self.ws.send(Message(data=data)))

    async def receive_until(self, stop) -> None:
        """Read events until `stop(self)` holds (messages and the peer's close recorded)."""
        while not stop(self):
            data = await self.stream.receive_some(65536)
            if not data:
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, CloseConnection):
                    self.close = (event.code, event.reason)
                elif isinstance(event, Message) and event.message_finished:
                    self.messages.append(event.data)
