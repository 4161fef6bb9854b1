//! Every option of upstream rtpengine (current master, plus the two that
//! only 10.5 has) that this daemon does not implement. They are accepted on
//! the command line and in the config file, with upstream's short letters
//! and value types, and reported once at startup as not implemented, so a
//! working rtpengine configuration starts here too. Options neither upstream
//! nor this daemon knows stay errors.
//!
//! The list follows upstream's `daemon/main.c` option table and
//! `docs/rtpengine.md`; the options this daemon implements are the fields of
//! [`super::Config`].

/// The value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No value.
    Flag,
    /// An integer.
    Int,
    /// A number with a fraction.
    Double,
    /// Any text.
    Text,
    /// Text, repeatable (a list).
    List,
    /// One of these words.
    Enum(&'static [&'static str]),
}

/// An upstream option this daemon does not implement.
#[derive(Debug, Clone, Copy)]
pub struct Upstream {
    /// Long name, without `--`.
    pub long: &'static str,
    /// Short letter, if upstream has one.
    pub short: Option<char>,
    /// Its value.
    pub kind: Kind,
    /// What it does upstream (for the help text).
    pub what: &'static str,
}

/// The options, in upstream's order (one line each).
#[rustfmt::skip]
pub const UNIMPLEMENTED: &[Upstream] = &[
    Upstream { long: "split-logs", short: None, kind: Kind::Flag, what: "Split multi-line log messages into separate lines" },
    Upstream { long: "max-log-line-length", short: None, kind: Kind::Int, what: "Break log lines at this length; <0 = unlimited" },
    Upstream { long: "log-mark-prefix", short: None, kind: Kind::Text, what: "Prefix for sensitive data in logs" },
    Upstream { long: "log-mark-suffix", short: None, kind: Kind::Text, what: "Suffix for sensitive data in logs" },
    Upstream { long: "thread-stack", short: None, kind: Kind::Int, what: "Thread stack size in kB; -1 = OS default" },
    Upstream { long: "poller-size", short: None, kind: Kind::Int, what: "Max poll events per iteration" },
    Upstream { long: "io-uring", short: None, kind: Kind::Flag, what: "Use io_uring (experimental, Linux >= 6.0)" },
    Upstream { long: "io-uring-buffers", short: None, kind: Kind::Int, what: "io_uring entries per thread" },
    Upstream { long: "evs-lib-path", short: None, kind: Kind::Text, what: "Path of EVS reference codec .so" },
    Upstream { long: "codec-chain-lib-path", short: None, kind: Kind::Text, what: "Path of libcodec-chain.so" },
    Upstream { long: "codec-chain-runners", short: None, kind: Kind::Int, what: "Chain runners per codec" },
    Upstream { long: "codec-chain-concurrency", short: None, kind: Kind::Int, what: "Max concurrent codec jobs per runner" },
    Upstream { long: "codec-chain-async", short: None, kind: Kind::Int, what: "Number of background callback threads" },
    Upstream { long: "codec-chain-nonblock", short: None, kind: Kind::Flag, what: "Non-blocking operation of async codecs" },
    Upstream { long: "codec-chain-interval", short: None, kind: Kind::Int, what: "Microseconds between runs" },
    Upstream { long: "codec-chain-opus-application", short: None, kind: Kind::Enum(&["default", "voip", "speech", "audio", "music", "low delay", "low-delay", "lowdelay"]), what: "Opus application mode for codec-chain" },
    Upstream { long: "codec-chain-opus-complexity", short: None, kind: Kind::Int, what: "Opus encoding complexity 0..10" },
    Upstream { long: "nftables-chain", short: None, kind: Kind::Text, what: "nftables chain to create/flush for the kernel forwarding rule; empty = don't manage" },
    Upstream { long: "nftables-base-chain", short: None, kind: Kind::Text, what: "Base chain that jumps to nftables-chain; empty = make chain a base chain; 'none' = no…" },
    Upstream { long: "nftables-append", short: None, kind: Kind::Flag, what: "Append (not prepend) the rule in the base chain" },
    Upstream { long: "nftables-family", short: None, kind: Kind::Enum(&["ip", "ip4", "ip6", "ip,ip6", "ip4,ip6", "ip6,ip", "ip6,ip4", "inet"]), what: "Netfilter address family(ies) to manage" },
    Upstream { long: "xtables", short: None, kind: Kind::Flag, what: "Use legacy xt_RTPENGINE target instead of nftables expression" },
    Upstream { long: "nftables-start", short: None, kind: Kind::Flag, what: "Create nftables chain/rules, print 'Success', exit 0" },
    Upstream { long: "nftables-stop", short: None, kind: Kind::Flag, what: "Delete nftables chain/rules, print 'Success', exit 0" },
    Upstream { long: "nftables-status", short: None, kind: Kind::Flag, what: "Check nftables rules, print result, exit 0 (ok) or 1" },
    Upstream { long: "save-interface-ports", short: Some('S'), kind: Kind::Flag, what: "Bind ports only on first available local interface of the family (breaks ICE)" },
    Upstream { long: "listen-tcp", short: Some('l'), kind: Kind::List, what: "Legacy TCP control listener(s) [IP:]PORT" },
    Upstream { long: "graphite", short: Some('g'), kind: Kind::Text, what: "Graphite server IP46|HOSTNAME:PORT" },
    Upstream { long: "graphite-interval", short: Some('G'), kind: Kind::Int, what: "Graphite send interval, seconds" },
    Upstream { long: "graphite-prefix", short: None, kind: Kind::Text, what: "Prefix for every graphite line" },
    Upstream { long: "graphite-timeout", short: None, kind: Kind::Int, what: "Graphite socket connect timeout, seconds (0 = none)" },
    Upstream { long: "control-tos", short: None, kind: Kind::Int, what: "TOS for control-ng packets (0..255)" },
    Upstream { long: "control-pmtu", short: None, kind: Kind::Enum(&["want", "dont", "don't"]), what: "PMTU discovery behaviour on IPv4 UDP control sockets" },
    Upstream { long: "redis-resolve-on-reconnect", short: None, kind: Kind::Flag, what: "Re-resolve redis FQDN on reconnect" },
    Upstream { long: "redis-allowed-errors", short: None, kind: Kind::Int, what: "Consecutive redis errors before temporarily disabling redis" },
    Upstream { long: "redis-disable-time", short: None, kind: Kind::Int, what: "Seconds redis stays disabled after errors" },
    Upstream { long: "redis-cmd-timeout", short: None, kind: Kind::Int, what: "Redis command timeout, ms" },
    Upstream { long: "redis-connect-timeout", short: None, kind: Kind::Int, what: "Redis connect timeout, ms" },
    Upstream { long: "redis-format", short: None, kind: Kind::Enum(&["native", "bencode", "JSON"]), what: "Serialization format written to redis" },
    Upstream { long: "redis-tcp-keepalive-time", short: None, kind: Kind::Int, what: "TCP keepalive idle time for redis, s" },
    Upstream { long: "redis-tcp-keepalive-intvl", short: None, kind: Kind::Int, what: "TCP keepalive interval for redis, s" },
    Upstream { long: "redis-tcp-keepalive-probes", short: None, kind: Kind::Int, what: "TCP keepalive probes for redis" },
    Upstream { long: "redis-delete-async", short: Some('y'), kind: Kind::Int, what: "Enable asynchronous redis delete (10.5 only)" },
    Upstream { long: "redis-delete-async-interval", short: None, kind: Kind::Int, what: "Asynchronous redis delete interval, s (10.5 only)" },
    Upstream { long: "b2b-url", short: Some('b'), kind: Kind::Text, what: "XMLRPC URL for timeout callbacks; %% = source address" },
    Upstream { long: "log-facility-cdr", short: None, kind: Kind::Enum(&["auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]), what: "Syslog facility for CDRs" },
    Upstream { long: "log-facility-rtcp", short: None, kind: Kind::Enum(&["auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]), what: "Syslog facility for RTCP data" },
    Upstream { long: "log-facility-dtmf", short: None, kind: Kind::Enum(&["auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]), what: "Syslog facility for DTMF events" },
    Upstream { long: "dtmf-log-dest", short: None, kind: Kind::Text, what: "UDP destination IP46|HOSTNAME:PORT for DTMF JSON events" },
    Upstream { long: "dtmf-log-ng-tcp", short: None, kind: Kind::Flag, what: "Send DTMF events to connected TCP-NG clients (bencode)" },
    Upstream { long: "dtmf-no-suppress", short: None, kind: Kind::Flag, what: "Don't suppress audio during DTMF events when transcoding" },
    Upstream { long: "dtmf-digit-delay", short: None, kind: Kind::Int, what: "Delay in ms between DTMF digits for trigger detection" },
    Upstream { long: "dtmf-no-log-injects", short: None, kind: Kind::Flag, what: "Don't log DTMF events produced by inject-DTMF" },
    Upstream { long: "log-format", short: None, kind: Kind::Enum(&["default", "parsable"]), what: "Log line prefix style" },
    Upstream { long: "xmlrpc-format", short: Some('x'), kind: Kind::Int, what: "XMLRPC callback format: 0 SEMS, 1 call-id only, 2 Kamailio" },
    Upstream { long: "kernel-num-threads", short: None, kind: Kind::Int, what: "Kernel sender threads for kernel ring-buffer feature (experimental)" },
    Upstream { long: "codec-num-threads", short: None, kind: Kind::Int, what: "Async transcoding worker threads (experimental)" },
    Upstream { long: "kernel-slots", short: None, kind: Kind::Int, what: "Slots per kernel poller for kernel ring buffer (experimental)" },
    Upstream { long: "sip-source", short: None, kind: Kind::Flag, what: "Use SIP source address instead of SDP address by default" },
    Upstream { long: "max-load", short: None, kind: Kind::Double, what: "Reject new sessions above this 1-min load average" },
    Upstream { long: "max-cpu", short: None, kind: Kind::Double, what: "Reject new sessions above this CPU usage percent" },
    Upstream { long: "max-bandwidth", short: None, kind: Kind::Int, what: "Reject new sessions above this many bytes/s received" },
    Upstream { long: "max-recv-iters", short: None, kind: Kind::Int, what: "Max continuous recv cycles per UDP poll" },
    Upstream { long: "homer", short: None, kind: Kind::Text, what: "HEP/Homer capture server IP46|HOSTNAME:PORT" },
    Upstream { long: "homer-protocol", short: None, kind: Kind::Enum(&["udp", "tcp"]), what: "Transport to Homer" },
    Upstream { long: "homer-id", short: None, kind: Kind::Int, what: "HEP capture ID" },
    Upstream { long: "homer-disable-rtcp-stats", short: None, kind: Kind::Flag, what: "Don't send RTCP stats to Homer" },
    Upstream { long: "homer-enable-ng", short: None, kind: Kind::Flag, what: "Send NG control traffic to Homer" },
    Upstream { long: "homer-ng-capture-proto", short: None, kind: Kind::Int, what: "HEP capture protocol type for NG traffic (0..255)" },
    Upstream { long: "recording-dir", short: None, kind: Kind::Text, what: "Spool dir for recordings (pcap/ + metadata/)" },
    Upstream { long: "recording-method", short: None, kind: Kind::Enum(&["pcap", "proc", "all"]), what: "Call recording method" },
    Upstream { long: "recording-format", short: None, kind: Kind::Enum(&["raw", "eth"]), what: "PCAP link format" },
    Upstream { long: "record-egress", short: None, kind: Kind::Flag, what: "Record egress instead of ingress media" },
    Upstream { long: "record-both", short: None, kind: Kind::Flag, what: "Record both ingress and egress media" },
    Upstream { long: "iptables-chain", short: None, kind: Kind::Text, what: "iptables chain to manage per-port ACCEPT rules in" },
    Upstream { long: "codecs", short: None, kind: Kind::Flag, what: "Print supported codecs and exit 0" },
    Upstream { long: "scheduling", short: None, kind: Kind::Enum(&["default", "none", "fifo", "rr", "other", "batch", "idle"]), what: "Scheduling policy for worker threads" },
    Upstream { long: "priority", short: None, kind: Kind::Int, what: "Worker thread RT priority (1..99) or nice (-20..19)" },
    Upstream { long: "idle-scheduling", short: None, kind: Kind::Enum(&["default", "none", "fifo", "rr", "other", "batch", "idle"]), what: "Scheduling policy for low-priority threads" },
    Upstream { long: "idle-priority", short: None, kind: Kind::Int, what: "Priority/nice for low-priority threads" },
    Upstream { long: "log-srtp-keys", short: None, kind: Kind::Flag, what: "Log SRTP keys at ERR instead of DEBUG" },
    Upstream { long: "mysql-host", short: None, kind: Kind::Text, what: "MySQL/MariaDB host for media playback" },
    Upstream { long: "mysql-port", short: None, kind: Kind::Int, what: "MySQL port" },
    Upstream { long: "mysql-user", short: None, kind: Kind::Text, what: "MySQL user" },
    Upstream { long: "mysql-pass", short: None, kind: Kind::Text, what: "MySQL password" },
    Upstream { long: "mysql-query", short: None, kind: Kind::Text, what: "Query with exactly one %llu placeholder" },
    Upstream { long: "jitter-buffer", short: None, kind: Kind::Int, what: "Jitter buffer size in packets" },
    Upstream { long: "jb-clock-drift", short: None, kind: Kind::Flag, what: "Jitter buffer clock drift compensation" },
    Upstream { long: "jb-adaptive", short: None, kind: Kind::Flag, what: "Adaptive jitter buffer sizing" },
    Upstream { long: "jb-adaptive-min", short: None, kind: Kind::Int, what: "Adaptive JB minimum, ms" },
    Upstream { long: "jb-adaptive-max", short: None, kind: Kind::Int, what: "Adaptive JB maximum, ms (<=1000)" },
    Upstream { long: "debug-srtp", short: None, kind: Kind::Flag, what: "Log per-packet SRTP details (sets log-level-srtp=7)" },
    Upstream { long: "reject-invalid-sdp", short: None, kind: Kind::Flag, what: "Refuse SDP that can't be parsed cleanly" },
    Upstream { long: "dtls-signature", short: None, kind: Kind::Enum(&["SHA-256", "SHA-1", "sha256", "sha1"]), what: "Hash for DTLS cert signature" },
    Upstream { long: "listen-https", short: None, kind: Kind::List, what: "HTTPS/WSS listener(s) [IP46|HOSTNAME:]PORT" },
    Upstream { long: "https-cert", short: None, kind: Kind::Text, what: "PEM server certificate for HTTPS/WSS" },
    Upstream { long: "https-key", short: None, kind: Kind::Text, what: "PEM private key for HTTPS/WSS" },
    Upstream { long: "http-threads", short: None, kind: Kind::Int, what: "HTTP/WS worker threads" },
    Upstream { long: "http-buf-size", short: None, kind: Kind::Int, what: "libwebsockets buffer size, kB" },
    Upstream { long: "http-idle-timeout", short: None, kind: Kind::Int, what: "Idle HTTP keepalive timeout, s" },
    Upstream { long: "software-id", short: None, kind: Kind::Text, what: "Software identification (e.g. STUN SOFTWARE); non-alnum chars -> '-'" },
    Upstream { long: "poller-per-thread", short: None, kind: Kind::Flag, what: "One poller per worker thread" },
    Upstream { long: "timer-accuracy", short: None, kind: Kind::Int, what: "Minimum timer sleep, microseconds" },
    Upstream { long: "dtx-delay", short: None, kind: Kind::Int, what: "DTX processing delay, ms" },
    Upstream { long: "max-dtx", short: None, kind: Kind::Int, what: "Max DTX duration, s (<=0 = unlimited)" },
    Upstream { long: "dtx-buffer", short: None, kind: Kind::Int, what: "Max packets in DTX buffer" },
    Upstream { long: "dtx-lag", short: None, kind: Kind::Int, what: "Max audio held in DTX buffer, ms" },
    Upstream { long: "dtx-shift", short: None, kind: Kind::Int, what: "DTX timer shift on over/underflow, ms" },
    Upstream { long: "dtx-cn-params", short: None, kind: Kind::List, what: "CN parameters (RFC 3389) for DTX gap fill; first 0..127, rest 0..254" },
    Upstream { long: "amr-dtx", short: None, kind: Kind::Enum(&["native", "CN"]), what: "DTX mode for AMR/AMR-WB" },
    Upstream { long: "evs-dtx", short: None, kind: Kind::Enum(&["native", "CN"]), what: "DTX mode for EVS" },
    Upstream { long: "silence-detect", short: None, kind: Kind::Double, what: "Silence detection threshold percent" },
    Upstream { long: "cn-payload", short: None, kind: Kind::List, what: "CN parameters replacing detected silence (RFC 3389)" },
    Upstream { long: "player-cache", short: None, kind: Kind::Flag, what: "Cache encoded media for play media" },
    Upstream { long: "kernel-player", short: None, kind: Kind::Int, what: "Max concurrent kernel media players" },
    Upstream { long: "kernel-player-media", short: None, kind: Kind::Int, what: "Max media files in kernel player" },
    Upstream { long: "preload-media-files", short: None, kind: Kind::List, what: "Media files to preload into memory; 'on-demand' special" },
    Upstream { long: "media-files-reload", short: None, kind: Kind::Int, what: "Reload-check interval for preloaded files, s" },
    Upstream { long: "media-files-expire", short: None, kind: Kind::Int, what: "Max unused age of cached media files, s" },
    Upstream { long: "expiry-timer", short: None, kind: Kind::Int, what: "How often to check for expired media cache entries, s" },
    Upstream { long: "preload-db-media", short: None, kind: Kind::List, what: "DB media IDs to preload; 'on-demand' special" },
    Upstream { long: "db-media-reload", short: None, kind: Kind::Int, what: "Reload interval for DB media, s" },
    Upstream { long: "db-media-expire", short: None, kind: Kind::Int, what: "Max unused age of DB media in memory, s" },
    Upstream { long: "db-media-cache", short: None, kind: Kind::Text, what: "Directory for filesystem cache of DB media" },
    Upstream { long: "preload-db-cache", short: None, kind: Kind::List, what: "DB media IDs to preload into file cache; 'on-demand' special" },
    Upstream { long: "db-cache-reload", short: None, kind: Kind::Int, what: "Reload interval for file-cached DB media, s" },
    Upstream { long: "db-cache-expire", short: None, kind: Kind::Int, what: "Max unused age of file-cached DB media, s" },
    Upstream { long: "audio-buffer-length", short: None, kind: Kind::Int, what: "Audio player buffer length, ms" },
    Upstream { long: "audio-buffer-delay", short: None, kind: Kind::Int, what: "Initial delay for new audio sources, ms" },
    Upstream { long: "audio-player", short: None, kind: Kind::Enum(&["on-demand", "play-media", "transcoding", "always"]), what: "When to enable the audio player" },
    Upstream { long: "transcode-config", short: None, kind: Kind::Text, what: "Prefix of config sections [PREFIX-x] with transcode rules" },
    Upstream { long: "mqtt-host", short: None, kind: Kind::Text, what: "Mosquitto broker host" },
    Upstream { long: "mqtt-port", short: None, kind: Kind::Int, what: "Mosquitto broker port" },
    Upstream { long: "mqtt-tls-alpn", short: None, kind: Kind::Text, what: "TLS ALPN for broker" },
    Upstream { long: "mqtt-id", short: None, kind: Kind::Text, what: "MQTT client ID" },
    Upstream { long: "mqtt-keepalive", short: None, kind: Kind::Int, what: "MQTT keepalive, s" },
    Upstream { long: "mqtt-user", short: None, kind: Kind::Text, what: "MQTT username" },
    Upstream { long: "mqtt-pass", short: None, kind: Kind::Text, what: "MQTT password" },
    Upstream { long: "mqtt-cafile", short: None, kind: Kind::Text, what: "CA file (enables TLS)" },
    Upstream { long: "mqtt-capath", short: None, kind: Kind::Text, what: "CA path (enables TLS)" },
    Upstream { long: "mqtt-certfile", short: None, kind: Kind::Text, what: "Client certificate" },
    Upstream { long: "mqtt-keyfile", short: None, kind: Kind::Text, what: "Client key" },
    Upstream { long: "mqtt-publish-qos", short: None, kind: Kind::Int, what: "MQTT publish QoS 0|1|2" },
    Upstream { long: "mqtt-publish-topic", short: None, kind: Kind::Text, what: "MQTT publish topic" },
    Upstream { long: "mqtt-publish-interval", short: None, kind: Kind::Int, what: "Publish interval, ms" },
    Upstream { long: "mqtt-publish-scope", short: None, kind: Kind::Enum(&["global", "summary", "call", "media"]), what: "What to publish" },
    Upstream { long: "mos", short: None, kind: Kind::List, what: "MOS calculation options: CQ|LQ and formula G.107|G.107.2|legacy" },
    Upstream { long: "measure-rtp", short: None, kind: Kind::Flag, what: "Measure RTP metrics also for plain pass-through" },
    Upstream { long: "ssrc-reporting", short: None, kind: Kind::Enum(&["full", "inline", "global", "none"]), what: "Format of SSRC stats in delete/query responses" },
    Upstream { long: "socket-cpu-affinity", short: None, kind: Kind::Int, what: "SO_INCOMING_CPU round-robin upper bound; <0 = #cores" },
    Upstream { long: "janus-secret", short: None, kind: Kind::Text, what: "Admin secret enabling the Janus-compatible API" },
    Upstream { long: "rtcp-interval", short: None, kind: Kind::Int, what: "Generated RTCP interval, ms (+0..1 s random)" },
    Upstream { long: "moh-max-duration", short: None, kind: Kind::Int, what: "Max MoH playback duration, ms" },
    Upstream { long: "moh-max-repeats", short: None, kind: Kind::Int, what: "Max MoH repeats" },
    Upstream { long: "moh-attr-name", short: None, kind: Kind::Text, what: "Session-level SDP attribute added when MoH triggered" },
    Upstream { long: "moh-prevent-double-hold", short: None, kind: Kind::Flag, what: "Avoid double MoH (needs moh-attr-name)" },
    Upstream { long: "vsc-start-rec", short: None, kind: Kind::Text, what: "DTMF vertical service code to start recording" },
    Upstream { long: "vsc-stop-rec", short: None, kind: Kind::Text, what: "DTMF vertical service code to stop recording" },
    Upstream { long: "vsc-start-stop-rec", short: None, kind: Kind::Text, what: "DTMF vertical service code to start/stop recording" },
    Upstream { long: "vsc-pause-rec", short: None, kind: Kind::Text, what: "DTMF vertical service code to pause recording" },
    Upstream { long: "vsc-pause-resume-rec", short: None, kind: Kind::Text, what: "DTMF vertical service code to pause/resume recording" },
    Upstream { long: "vsc-start-pause-resume-rec", short: None, kind: Kind::Text, what: "DTMF vertical service code to start/pause/resume recording" },
    Upstream { long: "ng-client-timeout", short: None, kind: Kind::Int, what: "Timeout for outgoing NG requests, ms (>0)" },
    Upstream { long: "ng-client-retries", short: None, kind: Kind::Int, what: "Retries for outgoing NG requests (>0)" },
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadError};

    /// A value upstream would accept for `kind`.
    fn value(kind: Kind) -> Option<&'static str> {
        match kind {
            Kind::Flag => None,
            Kind::Int => Some("1"),
            Kind::Double => Some("1.5"),
            Kind::Text | Kind::List => Some("x"),
            Kind::Enum(values) => values.first().copied(),
        }
    }

    fn load(args: &[String]) -> Result<(Config, Vec<String>), LoadError> {
        let all = ["rtpengine", "--config-file=none"]
            .into_iter()
            .map(String::from)
            .chain(args.iter().cloned());
        Config::load_from(all)
    }

    #[test]
    fn every_upstream_option_is_accepted_long_and_short_with_one_warning() {
        for u in UNIMPLEMENTED {
            let mut forms = vec![match value(u.kind) {
                Some(v) => vec![format!("--{}={v}", u.long)],
                None => vec![format!("--{}", u.long)],
            }];
            if let Some(c) = u.short {
                let mut short = vec![format!("-{c}")];
                short.extend(value(u.kind).map(String::from));
                forms.push(short);
            }
            for args in forms {
                let (_, warnings) = load(&args).unwrap_or_else(|e| panic!("{args:?} refused: {e}"));
                assert_eq!(warnings.len(), 1, "{args:?}: {warnings:?}");
                assert!(warnings[0].contains(u.long), "{warnings:?}");
            }
        }
    }

    #[test]
    fn upstream_value_types_are_checked() {
        for bad in [
            "--log-level-internals=loud",
            "--max-load=x",
            "--recording-method=tape",
        ] {
            assert!(load(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_file_full_of_unimplemented_keys_starts_with_warnings() {
        let dir = std::env::temp_dir().join(format!("rtpe-upstream-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("rtpengine.conf");
        let mut text = String::from("[rtpengine]\ninterface = 127.0.0.1\n");
        for u in UNIMPLEMENTED {
            let v = match u.kind {
                Kind::Flag => "true",
                // Two list items, glib's way.
                Kind::List => "x;y",
                k => value(k).unwrap_or_default(),
            };
            text.push_str(&format!("{} = {v}\n", u.long));
        }
        std::fs::write(&f, text).unwrap();
        let (cfg, warnings) =
            Config::load_from(["rtpengine", "--config-file", f.to_str().unwrap()]).unwrap();
        assert_eq!(cfg.interfaces, vec!["127.0.0.1"]);
        assert_eq!(
            warnings.len(),
            UNIMPLEMENTED.len(),
            "one warning per option"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The forms upstream's manual and sample config show: the usage
    /// example's command line, and the sample file's interface lines
    /// (literal addresses: they need not exist to be parsed).
    #[test]
    fn documented_examples_parse() {
        let args: Vec<String> = [
            "--table=0",
            "--interface=10.64.73.31",
            "--interface=2001:db8::4f3:3d",
            "--listen-ng=127.0.0.1:2223",
            "--tos=184",
            "--pidfile=/run/rtpengine.pid",
            "--no-fallback",
        ]
        .map(String::from)
        .to_vec();
        let (cfg, warnings) = load(&args).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(cfg.interface_config().unwrap().specs.len(), 2);
        for (line, names) in [
            (
                "interface = internal/12.23.34.45;external/23.34.45.54",
                &["internal", "external"][..],
            ),
            ("interface = 12.23.34.45!23.34.45.56", &["default"]),
            (
                "interface = pub:1/192.0.2.1;pub:2/192.0.2.2;pub=pub:1",
                &["pub:1", "pub:2"],
            ),
        ] {
            let dir =
                std::env::temp_dir().join(format!("rtpe-doc-{}-{}", std::process::id(), names[0]));
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join("rtpengine.conf");
            std::fs::write(&f, format!("[rtpengine]\n{line}\n")).unwrap();
            let (cfg, _) =
                Config::load_from(["rtpengine", "--config-file", f.to_str().unwrap()]).unwrap();
            let ic = cfg.interface_config().unwrap();
            let got: Vec<&str> = ic.specs.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(got, names, "{line}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn container_command_lines_start() {
        // As the images rtpengine users run build it (their entrypoints
        // append user options after their own, so repeats must work).
        let args: Vec<String> = [
            "--interface=127.0.0.1!203.0.113.1",
            "--listen-ng=127.0.0.1:22222",
            "--listen-cli=127.0.0.1:2224",
            "--listen-http=127.0.0.1:8080",
            "--port-min=23000",
            "--port-max=32768",
            "--log-level=6",
            "--log-level-internals=7",
            "--log-stderr",
            "--foreground",
            "--delete-delay=0",
            "--recording-dir=/rec",
            "--recording-method=pcap",
            "--log-level=7",
        ]
        .map(String::from)
        .to_vec();
        let (cfg, warnings) = load(&args).unwrap();
        assert_eq!(cfg.log_level, 7, "a later repeat wins");
        assert_eq!(
            cfg.ng_addrs().unwrap(),
            vec!["127.0.0.1:22222".parse().unwrap()]
        );
        assert_eq!(
            cfg.cli_addrs().unwrap(),
            vec!["127.0.0.1:2224".parse().unwrap()]
        );
        for o in ["recording-dir", "recording-method"] {
            assert!(warnings.iter().any(|w| w.contains(o)), "{o}: {warnings:?}");
        }
        // Implemented now: taken, not warned about.
        assert_eq!(
            cfg.log_levels,
            vec![(crate::logging::subsystem("internals").unwrap(), 7)]
        );
        assert!(!warnings.iter().any(|w| w.contains("log-level-internals")));
    }

    #[test]
    fn help_and_version() {
        match load(&["--help".to_string()]) {
            Err(LoadError::Display(text)) => assert!(text.contains("--interface")),
            other => panic!("--help: {:?}", other.map(|_| ())),
        }
        assert!(load(&["-v".to_string()]).unwrap().0.version);
        assert!(load(&["--version".to_string()]).unwrap().0.version);
        assert!(load(&["--no-such-option".to_string()]).is_err());
    }
}
