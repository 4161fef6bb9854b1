"""A WebRTC peer for the tests: aiortc (ICE, DTLS-SRTP, rtcp-mux, SAVPF).

Talks JSON lines on stdin/stdout with the Rust test:

  -> {"offer": true}             create an offer; replies {"sdp": ...}
  -> {"answer_to": SDP}          answer a remote offer; replies {"sdp": ...}
  -> {"remote_answer": SDP}      apply the answer to our offer; replies {}
  -> {"run": SECONDS}            send audio for that long, then reply with
                                 {"frames": n, "samples": [...], "state": ...,
                                  "ice_role": ..., "tracks": {mid: {"frames":
                                  n, "samples": [...]}}}

With a second argument `bundle` the peer has two audio sections on one
transport (max-bundle): PCMU of SAMPLE in the first, PCMA of SAMPLE in the
second; what arrives is also reported per section (`tracks`).

The audio sent is PCMU of a constant sample (1000, so every payload byte is
0xCE); what arrives is reported as the set of sample values decoded, so the
test can check the content both ways.

Only the address given on the command line is used for host candidates
(the test namespace also holds the daemon's own addresses).
"""

import asyncio
import fractions
import sys

import array

import aioice.ice
import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from line_peer import serve

ADDRESS = sys.argv[1]
BUNDLE = sys.argv[2:] == ["bundle"]
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [ADDRESS]

SAMPLE = 1000


class Tone(MediaStreamTrack):
    """20 ms frames of one constant sample at 8 kHz."""

    kind = "audio"

    def __init__(self):
        super().__init__()
        self.pts = 0

    async def recv(self):
        await asyncio.sleep(0.02)
        frame = av.AudioFrame(format="s16", layout="mono", samples=160)
        frame.planes[0].update(array.array("h", [SAMPLE] * 160).tobytes())
        frame.sample_rate = 8000
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, 8000)
        self.pts += 160
        return frame


class Peer:
    def __init__(self):
        policy = RTCBundlePolicy.MAX_BUNDLE if BUNDLE else RTCBundlePolicy.BALANCED
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=policy))
        self.frames = 0
        self.samples = set()
        self.tracks = {}
        self.pc.on("track", self.on_track)
        codecs = RTCRtpSender.getCapabilities("audio").codecs
        for mime in ["audio/PCMU", "audio/PCMA"] if BUNDLE else ["audio/PCMU"]:
            transceiver = self.pc.addTransceiver(Tone(), direction="sendrecv")
            transceiver.setCodecPreferences([c for c in codecs if c.mimeType == mime])

    def on_track(self, track):
        mine = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        per_track = self.tracks.setdefault(mine, {"frames": 0, "samples": set()})

        async def consume():
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                values = array.array("h", bytes(frame.planes[0]))
                # Frames the jitter buffer fills in are silence: only real
                # audio counts.
                if any(values):
                    self.frames += 1
                    self.samples.update(values)
                    per_track["frames"] += 1
                    per_track["samples"].update(values)

        asyncio.ensure_future(consume())

    async def close(self):
        await self.pc.close()

    async def handle(self, msg):
        if "offer" in msg:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            return {"sdp": self.pc.localDescription.sdp}
        if "answer_to" in msg:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=msg["answer_to"], type="offer")
            )
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            return {"sdp": self.pc.localDescription.sdp}
        if "remote_answer" in msg:
            await self.pc.setRemoteDescription(
                RTCSessionDescription(sdp=msg["remote_answer"], type="answer")
            )
            return {}
        if "run" in msg:
            await asyncio.sleep(msg["run"])
            return {
                "frames": self.frames,
                "samples": sorted(self.samples)[:50],
                "ice": self.pc.iceConnectionState,
                # "controlled" only against a full agent that controls
                # (a lite agent leaves the control to every full one).
                "ice_role": self.pc.getTransceivers()[0].sender.transport.transport.role,
                "state": self.pc.connectionState,
                "tracks": {
                    t.mid: {"frames": v["frames"], "samples": sorted(v["samples"])[:50]}
                    for t, v in self.tracks.items()
                },
            }
        return {"error": f"unknown message {msg}"}


asyncio.run(serve(Peer))
