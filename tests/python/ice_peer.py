"""An ICE peer for the tests: aioice, a full ICE agent (RFC 8445), as a SIP
phone that speaks ICE would run it, with one or two components (RTP, and
RTCP when it does not multiplex).

Talks JSON lines on stdin/stdout with the Rust test:

  -> {"start": {"components": N, "controlling": BOOL}}
        a new agent (new credentials: a second start is an ICE restart);
        replies {"ufrag": ..., "pwd": ..., "candidates": ["<a=candidate value>", ...]}
  -> {"connect": {"ufrag": ..., "pwd": ..., "candidates": [...], "lite": BOOL}}
        the remote side's ICE; checks until every component has a nominated
        pair (10 s at most); replies {"controlling": BOOL,
        "selected": {"1": [host, port], ...}, "checks": {"1": N, ...}}
        (checks: how many the other agent sent to each component)
  -> {"exchange": {"send": {"1": [HEX, COUNT], ...}, "secs": S}}
        sends COUNT copies of each payload on its component, 20 ms apart,
        while receiving for S seconds; replies {"got": {"1": [HEX, ...], ...}}

Only the address given on the command line is used for host candidates
(the test namespace also holds the daemon's own addresses).
"""

import asyncio
import sys

import aioice.ice
from aioice import Candidate, Connection
from line_peer import serve

ADDRESS = sys.argv[1]
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [ADDRESS]


class CountingConnection(Connection):
    """Counts the checks the other agent sends, per component (a lite
    agent sends none)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.checks = {}

    def request_received(self, message, addr, protocol, *rest):
        component = str(protocol.local_candidate.component)
        self.checks[component] = self.checks.get(component, 0) + 1
        super().request_received(message, addr, protocol, *rest)


class Peer:
    def __init__(self):
        self.conn = None

    async def close(self):
        if self.conn is not None:
            await self.conn.close()

    async def handle(self, msg):
        if "start" in msg:
            if self.conn is not None:
                await self.conn.close()
            o = msg["start"]
            self.conn = CountingConnection(
                ice_controlling=o["controlling"], components=o["components"]
            )
            await self.conn.gather_candidates()
            return {
                "ufrag": self.conn.local_username,
                "pwd": self.conn.local_password,
                "candidates": [c.to_sdp() for c in self.conn.local_candidates],
            }
        if "connect" in msg:
            o = msg["connect"]
            self.conn.remote_username = o["ufrag"]
            self.conn.remote_password = o["pwd"]
            self.conn.remote_is_lite = o.get("lite", False)
            for c in o["candidates"]:
                await self.conn.add_remote_candidate(Candidate.from_sdp(c))
            await self.conn.add_remote_candidate(None)
            await asyncio.wait_for(self.conn.connect(), 10)
            selected = {
                str(k): list(p.remote_addr) for k, p in self.conn._nominated.items()
            }
            return {
                "controlling": self.conn.ice_controlling,
                "selected": selected,
                "checks": self.conn.checks,
            }
        if "exchange" in msg:
            o = msg["exchange"]
            got = {}

            async def receive():
                while True:
                    data, component = await self.conn.recvfrom()
                    got.setdefault(str(component), []).append(data.hex())

            async def send():
                for component, (payload, count) in o["send"].items():
                    for _ in range(count):
                        await self.conn.sendto(bytes.fromhex(payload), int(component))
                        await asyncio.sleep(0.02)

            task = asyncio.ensure_future(receive())
            await send()
            await asyncio.sleep(o["secs"])
            task.cancel()
            return {"got": got}
        return {"error": f"unknown message {msg}"}


asyncio.run(serve(Peer))
