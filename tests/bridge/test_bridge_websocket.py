"""The bridge drives real trio-websocket 0.12.2 over in-memory streams on virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test
from trio_websocket import ConnectionClosed, wrap_client_stream, wrap_server_stream

from statemodel.bridge import JobTimeout, TrioStateMachine
from statemodel.strategies.payloads import unicode_text

pytestmark = pytest.mark.timeout(60)

HANDSHAKE_BOUND = 5  # virtual seconds; wrap_*_stream have no timeouts of their own


async def _connect(nursery: trio.Nursery, serve: bool) -> object:
    """A client WebSocket to an in-memory server that echoes (``serve``) or never reads."""
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def server() -> None:
        with trio.fail_after(HANDSHAKE_BOUND):
            request = await wrap_server_stream(nursery, server_stream)
            ws = await request.accept()
        if serve:
            try:
                while True:
                    await ws.send_message(await ws.get_message())
            except ConnectionClosed:
                return  # the client closed: the echo is over
        else:
            await trio.sleep_forever()

    nursery.start_soon(server)
    with trio.fail_after(HANDSHAKE_BOUND):
        return await wrap_client_stream(nursery, client_stream, "localhost", "/echo")


class Echo(TrioStateMachine):
    async def trio_setup(self) -> None:
        self.ws = await _connect(self.nursery, serve=True)
        self.sent: list[str] = []
        self.echoed: list[str] = []

    async def trio_teardown(self) -> None:
        with trio.move_on_after(HANDSHAKE_BOUND):
            await self.ws.aclose()

    @rule(text=unicode_text(max_chars=30))
    def send(self, text: str) -> None:
        self.sent.append(text)
        self.run(self.ws.send_message, text)

    @rule()
    def receive_all(self) -> None:
        while len(self.echoed) < len(self.sent):
            self.echoed.append(self.run(self.ws.get_message, timeout=5))

    @rule()
    def ping(self) -> None:
        # Unread echoes would fill the client's queue (size 1) and stall its reader, so
        # the pong would never be read: drain first (see the regression test below).
        self.receive_all()
        self.run(self.ws.ping, timeout=5)

    @invariant()
    def echoes_are_a_prefix_of_what_was_sent(self) -> None:
        assert self.echoed == self.sent[: len(self.echoed)]


def test_echo_machine_over_trio_websocket() -> None:
    run_state_machine_as_test(
        Echo,
        settings=settings(max_examples=20, database=None, deadline=None, phases=[Phase.generate], stateful_step_count=15),
    )


def test_ping_waits_for_its_pong_so_a_stalled_peer_ends_in_job_timeout_not_a_hang() -> None:
    """trio-websocket 0.12.2: ``ping()`` waits for its pong, and with the default
    ``message_queue_size=1`` a peer that stops reading stops answering pongs too. Through the
    bridge the ping ends in JobTimeout at the job's virtual deadline instead of hanging."""

    class Stalled(TrioStateMachine):
        job_timeout = 30

        async def trio_setup(self) -> None:
            self.ws = await _connect(self.nursery, serve=False)

        @rule()
        def nothing(self) -> None:
            pass

    m = Stalled()
    try:
        for n in range(3):  # fill the server's queue (size 1) and block its reader
            m.run(m.ws.send_message, f"message {n}")
        start = m.clock.current_time()
        with pytest.raises(JobTimeout, match="ping did not finish within 30 virtual seconds"):
            m.run(m.ws.ping)
        assert m.clock.current_time() - start == 30
    finally:
        m.teardown()
    assert m._loop.dead
