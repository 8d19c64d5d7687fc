"""What the policies page says of aiohttp's own resend: attempts=1 never retries, and aiohttp's resend
of an idempotent request on a kept-alive connection the server closed passes through the policy."""

from __future__ import annotations

import asyncio

from asynctools import Retry, SessionRegistry, SitePolicy

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


async def test_aiohttps_resend_on_a_closed_kept_alive_connection_is_a_request_of_its_own() -> None:
    seen: list[int] = []  # per request that arrived: the number of its connection

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = len({*seen}) + 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                seen.append(number)
                if number == 1 and seen.count(1) == 2:
                    break  # the second request on the first connection: hang up without answering
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed its connection
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    registry = SessionRegistry(policies={url: SitePolicy(retry=Retry(attempts=1))})
    async with registry.session(url) as session:
        for _ in range(2):
            async with session.get(url) as resp:
                assert resp.status == 200
    assert seen == [1, 1, 2]  # the second GET reached the server twice: aiohttp resent it
    (site,) = registry.stats().sites
    assert (site.requests, site.attempts, site.retries) == (3, 3, {})  # through the policy, no retry of ours
    await registry.close()
    server.close()
    await server.wait_closed()
