"""The JSON-lines loop the Python peers share: one request per line on
stdin, one reply per line on stdout; an exception becomes {"error": ...},
which the Rust test fails with."""

import asyncio
import json
import sys


async def serve(make):
    """Makes the peer (inside the event loop: aiortc binds to it), serves
    `peer.handle(msg)` until stdin closes, then `peer.close()`."""
    peer = make()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            reply = await peer.handle(json.loads(line))
        except Exception as e:  # reported to the test, which fails with it
            reply = {"error": repr(e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    await peer.close()
