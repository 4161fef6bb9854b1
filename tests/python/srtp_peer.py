"""An SRTP endpoint on libsrtp (pylibsrtp), driven line by line on stdin.

Each request line is `<op> <kind> <suite> <base64 key||salt> <hex packet>`
with op `protect` or `unprotect` and kind `rtp` or `rtcp`; the answer line
is the resulting packet in hex, or `error <reason>`. One libsrtp session is
kept per (op, suite, key), so rollover counters and replay windows persist
across lines as in a real endpoint.
"""

import base64
import sys

import pylibsrtp

PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}

sessions = {}


def session(op, suite, key):
    k = (op, suite, key)
    if k not in sessions:
        direction = (
            pylibsrtp.Policy.SSRC_ANY_OUTBOUND
            if op == "protect"
            else pylibsrtp.Policy.SSRC_ANY_INBOUND
        )
        policy = pylibsrtp.Policy(
            key=base64.b64decode(key + "=" * (-len(key) % 4)),
            ssrc_type=direction,
            srtp_profile=PROFILES[suite],
        )
        sessions[k] = pylibsrtp.Session(policy=policy)
    return sessions[k]


for line in sys.stdin:
    try:
        op, kind, suite, key, data = line.split()
        s = session(op, suite, key)
        pkt = bytes.fromhex(data)
        fn = getattr(s, op + ("_rtcp" if kind == "rtcp" else ""))
        print(fn(pkt).hex(), flush=True)
    except Exception as e:  # reported to the test, which decides
        print("error", str(e).replace("\n", " ") or type(e).__name__, flush=True)
