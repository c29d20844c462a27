"""A TCP relay that adds latency: ``python -m tests.reliability._relay --listen IP:PORT --to IP:PORT --rtt-ms N``.

Where the kernel lacks ``netem``, the lab runs this inside a device's namespace in front of its agent:
every chunk read from one side is written to the other ``rtt_ms / 2`` later, in order, in each
direction. It changes no byte and adds no flow control of its own (bandwidth and loss come from the
link's ``tbf`` and nftables rules, which the traffic to the relay crosses). One side closing closes
the other, as a reset connection would. Prints ``relay ready LISTEN -> TO`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

__all__ = ["main"]

_CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk held ``delay_s``; close ``writer`` at the end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(_CHUNK)
            queue.put_nowait((loop.time() + delay_s, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(listen: tuple[str, int], to: tuple[str, int], delay_s: float) -> None:
    async def handle(down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*to)
        except OSError:
            down_w.close()
            return
        await asyncio.gather(_pump(down_r, up_w, delay_s), _pump(up_r, down_w, delay_s), return_exceptions=True)

    server = await asyncio.start_server(handle, *listen)
    print(f"relay ready {listen[0]}:{listen[1]} -> {to[0]}:{to[1]}", flush=True)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", required=True, type=_address)
    p.add_argument("--to", required=True, type=_address)
    p.add_argument("--rtt-ms", type=float, required=True, help="round trip added (half each way)")
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.listen, args.to, args.rtt_ms / 2000.0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
