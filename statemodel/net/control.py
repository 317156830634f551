"""A small JSON-over-HTTP control API for a ``FaultProxy`` (h11 on trio).

    GET    /faults            -> {"enabled": bool, "faults": [{"id", "fault", "args", "link"}]}
    POST   /faults            {"fault": "Latency", "args": {"seconds": 0.1}, "link": null} -> 201 {"id"}
    DELETE /faults/<id>       lift one fault
    POST   /enable | /disable lift all faults without forgetting them / put them back
    POST   /reset             forget every fault, heal every link
    GET    /links             {"links": [ids of live links]}
    GET    /trace             {"digest", "events": last 1000 events}

One-shot drops (Abort, CleanClose, TruncateMidFrame, HalfOpen, DropDuringHandshake) act
at once and are not listed; degrade and frame-aware faults stay listed until removed.
Errors are JSON ``{"error": "..."}`` with 400 (bad request), 404 (no such fault/path),
405 or 413. One request per connection (``Connection: close``) keeps the server tiny.
"""

from __future__ import annotations

import json
from typing import Any

import h11
import trio

from .faults import fault_from_dict

MAX_BODY = 64 * 1024
IO_TIMEOUT = 10.0


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    """Serves the control API for ``network`` (any ``LinkNetwork``: proxy or sim)."""

    def __init__(self, network, listen: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.network = network
        self.listen = listen
        self.port: int | None = None

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.listen[1], host=self.listen[0])
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._connection, listeners, handler_nursery=nursery)

    async def _connection(self, stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_BODY)
        try:
            with trio.fail_after(IO_TIMEOUT):
                request, body = await self._read_request(conn, stream)
                try:
                    status, payload = self.dispatch(request.method.decode(), request.target.decode(), body)
                except HttpError as exc:
                    status, payload = exc.status, {"error": str(exc)}
                await self._respond(conn, stream, status, payload)
        except HttpError as exc:
            try:
                with trio.fail_after(IO_TIMEOUT):
                    await self._respond(conn, stream, exc.status, {"error": str(exc)})
            except (h11.LocalProtocolError, trio.BrokenResourceError, trio.TooSlowError):
                pass
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass
        finally:
            await stream.aclose()

    async def _read_request(self, conn: h11.Connection, stream) -> tuple[h11.Request, bytes]:
        request = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(400, f"bad HTTP request: {exc}") from None
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise HttpError(413, f"request body over {MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                raise trio.BrokenResourceError("client went away")

    async def _respond(self, conn: h11.Connection, stream, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(data))), ("connection", "close")]
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
        await stream.send_all(conn.send(h11.Data(data=data)))
        await stream.send_all(conn.send(h11.EndOfMessage()))

    # -- routes ------------------------------------------------------------------------

    def dispatch(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        """Pure request -> (status, JSON payload); raises ``HttpError``."""
        net = self.network
        path = target.split("?", 1)[0].rstrip("/") or "/"
        if path == "/faults":
            if method == "GET":
                return 200, self.describe()
            if method == "POST":
                obj = _json(body)
                link = obj.get("link")
                if link is not None and not isinstance(link, int):
                    raise HttpError(400, "link must be an integer link id or null")
                try:
                    fault = fault_from_dict(obj)
                    fid = net.apply(fault, link)
                except (ValueError, TypeError) as exc:
                    raise HttpError(400, str(exc)) from None
                return 201, {"id": fid, "fault": repr(fault)}
            raise HttpError(405, f"{method} not allowed on /faults (GET, POST)")
        if path.startswith("/faults/"):
            if method != "DELETE":
                raise HttpError(405, f"{method} not allowed on {path} (DELETE)")
            try:
                fid = int(path.rsplit("/", 1)[1])
                fault = net.remove(fid)
            except ValueError:
                raise HttpError(400, f"fault id must be an integer, got {path.rsplit('/', 1)[1]!r}") from None
            except KeyError as exc:
                raise HttpError(404, exc.args[0]) from None
            return 200, {"removed": fid, "fault": repr(fault)}
        actions = {"/enable": net.enable, "/disable": net.disable, "/reset": net.reset}
        if path in actions:
            if method != "POST":
                raise HttpError(405, f"{method} not allowed on {path} (POST)")
            actions[path]()
            return 200, self.describe()
        if path == "/links" and method == "GET":
            return 200, {"links": net.links}
        if path == "/trace" and method == "GET":
            return 200, {"digest": net.trace.digest(), "events": [list(e) for e in net.trace.events[-1000:]]}
        raise HttpError(404, f"no route {method} {path}; see GET /faults, POST /faults, DELETE /faults/<id>, "
                             "POST /enable|/disable|/reset, GET /links, GET /trace")

    def describe(self) -> dict[str, Any]:
        net = self.network
        return {
            "enabled": net.enabled,
            "faults": [dict(id=fid, link=link, **fault.to_dict()) for fid, (fault, link) in sorted(net.faults.items())],
        }


def _json(body: bytes) -> dict:
    try:
        obj = json.loads(body or b"{}")
    except ValueError as exc:
        raise HttpError(400, f"body is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise HttpError(400, "body must be a JSON object")
    return obj
