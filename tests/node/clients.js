#!/usr/bin/env node
// Drives a running rtpengine-rs daemon with jambonz's npm rtpengine-client
// (0.4.12): the UDP `Client`, `TcpClient` and `WsClient` each run ping, offer,
// answer, query, list and delete and check the replies. Exits non-zero on the
// first failure, so the Rust test (tests/tests/clients_node.rs) only checks
// the exit status and prints this script's output.
//
// Usage: node clients.js --udp 127.0.0.1:2223 --tcp 127.0.0.1:2224 \
//          --ws ws://127.0.0.1:2225/ [--media 127.0.0.1]
// (or RTPE_UDP / RTPE_TCP / RTPE_WS / RTPE_MEDIA in the environment). A
// transport left out is skipped with a message; at least one is required.

'use strict';

const assert = require('assert');
const { Client, TcpClient, WsClient } = require('rtpengine-client');

const TIMEOUT = 1500;

function parseArgs(argv) {
  const opts = {
    udp: process.env.RTPE_UDP,
    tcp: process.env.RTPE_TCP,
    ws: process.env.RTPE_WS,
    media: process.env.RTPE_MEDIA || '127.0.0.1',
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(udp|tcp|ws|media)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unknown argument ${argv[i]}`);
    opts[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
  }
  return opts;
}

function sdp(origin, port, sess) {
  return [
    'v=0',
    `o=- ${sess} 1 IN IP4 ${origin}`,
    's=-',
    `c=IN IP4 ${origin}`,
    't=0 0',
    `m=audio ${port} RTP/AVP 8 101`,
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-15',
    'a=sendrecv',
    '',
  ].join('\r\n');
}

function check(cond, what, reply) {
  if (!cond) {
    throw new Error(`${what}; reply: ${JSON.stringify(reply)}`);
  }
}

// The media port the daemon put in an SDP, after checking it advertises the
// daemon's media address (in c= and not the phone's).
function checkSdp(what, reply, media, phonePort) {
  check(reply && reply.result === 'ok', `${what}: result is not ok`, reply);
  check(typeof reply.sdp === 'string' && reply.sdp.startsWith('v=0'), `${what}: no SDP`, reply);
  check(reply.sdp.includes(`c=IN IP4 ${media}\r\n`), `${what}: SDP lacks c=IN IP4 ${media}`, reply);
  const m = /^m=audio (\d+) RTP\/AVP 8 101\r$/m.exec(reply.sdp);
  check(m, `${what}: SDP lacks m=audio <port> RTP/AVP 8 101`, reply);
  const port = Number(m[1]);
  check(port !== phonePort, `${what}: SDP still carries the phone's port ${phonePort}`, reply);
  return port;
}

// Runs ping, offer, answer, query, list, delete on one client. `send(cmd,
// opts)` hides the UDP client's extra (port, host) arguments.
async function exercise(name, send, media) {
  const log = (msg) => console.log(`[${name}] ${msg}`);
  const callId = `node-${name}-${process.pid}-${Date.now()}`;
  const fromTag = `from-${name}`;
  const toTag = `to-${name}`;

  let r = await send('ping', {});
  check(r && r.result === 'pong', 'ping: result is not pong', r);
  log('ping → pong');

  r = await send('offer', {
    'call-id': callId,
    'from-tag': fromTag,
    sdp: sdp('127.0.0.1', 40000, 1001),
    replace: ['origin', 'session-connection'],
    flags: ['trust-address'],
  });
  const offerPort = checkSdp('offer', r, media, 40000);
  log(`offer → ok, callee gets ${media}:${offerPort}`);

  r = await send('answer', {
    'call-id': callId,
    'from-tag': fromTag,
    'to-tag': toTag,
    sdp: sdp('127.0.0.1', 40002, 2002),
    replace: ['origin', 'session-connection'],
  });
  const answerPort = checkSdp('answer', r, media, 40002);
  check(answerPort !== offerPort, 'answer: same port as the offer', r);
  log(`answer → ok, caller gets ${media}:${answerPort}`);

  r = await send('query', { 'call-id': callId });
  check(r && r.result === 'ok', 'query: result is not ok', r);
  check(r.tags && r.tags[fromTag] && r.tags[toTag], `query: tags lack ${fromTag}/${toTag}`, r);
  check(r.tags[fromTag].tag === fromTag, 'query: tags.<from>.tag mismatch', r);
  check(r.totals && r.totals.RTP && typeof r.totals.RTP.packets === 'number',
    'query: totals.RTP.packets is not a number', r);
  check(typeof r.created === 'number', 'query: created is not a number', r);
  log(`query → ok, tags ${Object.keys(r.tags).join(', ')}`);

  r = await send('list', { limit: 1000 });
  check(r && r.result === 'ok' && Array.isArray(r.calls), 'list: no calls array', r);
  check(r.calls.includes(callId), `list: ${callId} missing`, r);
  log(`list → ok, ${r.calls.length} call(s) including ours`);

  r = await send('delete', { 'call-id': callId, 'from-tag': fromTag, 'delete-delay': 0 });
  check(r && r.result === 'ok', 'delete: result is not ok', r);
  check(r.warning === undefined, 'delete: unexpected warning', r);
  log('delete → ok');

  r = await send('list', { limit: 1000 });
  check(r && r.result === 'ok' && Array.isArray(r.calls), 'list after delete: no calls array', r);
  check(!r.calls.includes(callId), `list after delete: ${callId} still listed`, r);

  r = await send('query', { 'call-id': callId });
  check(r && r.result === 'error' && r['error-reason'] === 'Unknown call-id',
    'query after delete: expected error "Unknown call-id"', r);
  log('list/query after delete → call gone');
}

// Resolves once `client` emitted `event`, rejects on 'error' or after TIMEOUT.
function ready(client, event, what) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no '${event}' within ${TIMEOUT} ms`)), TIMEOUT);
    client.once(event, () => { clearTimeout(t); resolve(); });
    client.once('error', (err) => { clearTimeout(t); reject(new Error(`${what}: ${err.message || err}`)); });
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  let ran = 0;
  // An unmatched reply or a socket error is an 'error' event: count it as a failure.
  const failOnError = (name) => (err) => {
    console.error(`[${name}] error event: ${err && (err.message || err)}`);
    process.exitCode = 1;
  };

  if (opts.udp) {
    const [host, port] = opts.udp.split(/:(?=\d+$)/);
    const c = new Client({ timeout: TIMEOUT });
    await ready(c, 'listening', 'udp client');
    c.on('error', failOnError('udp'));
    await exercise('udp', (cmd, o) => c[cmd](Number(port), host, o), opts.media);
    c.close();
    ran++;
  } else {
    console.log('[udp] skipped (no --udp)');
  }

  if (opts.tcp) {
    const c = new TcpClient({ hostport: opts.tcp, timeout: TIMEOUT });
    await ready(c, 'connect', `tcp client to ${opts.tcp}`);
    c.on('error', failOnError('tcp'));
    await exercise('tcp', (cmd, o) => c[cmd](o), opts.media);
    c.close();
    ran++;
  } else {
    console.log('[tcp] skipped (no --tcp)');
  }

  if (opts.ws) {
    const c = new WsClient({ url: opts.ws, timeout: TIMEOUT });
    await ready(c, 'listening', `websocket client to ${opts.ws}`);
    c.on('error', failOnError('ws'));
    await exercise('ws', (cmd, o) => c[cmd](o), opts.media);
    // WsClient reconnects on close; exit explicitly below.
    ran++;
  } else {
    console.log('[ws] skipped (no --ws)');
  }

  assert.ok(ran > 0, 'no transport given (--udp, --tcp, --ws)');
  console.log(`ok: ${ran} transport(s) passed`);
}

main().then(
  () => process.exit(process.exitCode || 0),
  (err) => {
    console.error(`FAIL: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
