//! DTLS-SRTP (RFC 5763, RFC 5764): the certificate this daemon presents,
//! its `a=fingerprint`, and one handshake driven by datagrams the caller
//! hands in and sends out (OpenSSL over memory I/O: nothing here knows
//! sockets or calls). A finished handshake yields the SRTP master keys of
//! both directions; the peer is authenticated by comparing its certificate
//! with the fingerprint its SDP announced (self-signed certificates, as
//! WebRTC uses them).

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::srtp::SrtpProfileId;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
};
use openssl::x509::{X509NameBuilder, X509};

use super::Suite;

/// What can go wrong with DTLS.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// OpenSSL refused (key generation, context, a protocol error).
    #[error("openssl: {0}")]
    Ssl(#[from] openssl::error::ErrorStack),
    /// The handshake failed (an alert, a malformed record).
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// The negotiated SRTP profile is not one this daemon offers.
    #[error("no usable SRTP profile negotiated")]
    Profile,
    /// The handshake has not finished.
    #[error("DTLS handshake not finished")]
    NotDone,
}

/// The SRTP profiles offered in `use_srtp`, preferred first (those that
/// browsers and upstream support).
const PROFILES: &str =
    "SRTP_AEAD_AES_256_GCM:SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80:SRTP_AES128_CM_SHA1_32";

/// Upstream's default `--dtls-ciphers`.
pub const DEFAULT_CIPHERS: &str =
    "DEFAULT:!NULL:!aNULL:!SHA256:!SHA384:!aECDH:!AESGCM+AES256:!aPSK";

/// Upstream's default (and least) `--dtls-mtu`.
pub const DEFAULT_MTU: u32 = 1200;

/// Hash functions of `a=fingerprint` (RFC 8122), those upstream offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    /// Every hash, in upstream's order.
    pub const ALL: [Hash; 5] = [
        Hash::Sha1,
        Hash::Sha224,
        Hash::Sha256,
        Hash::Sha384,
        Hash::Sha512,
    ];

    /// The name in `a=fingerprint`.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha1 => "sha-1",
            Hash::Sha224 => "sha-224",
            Hash::Sha256 => "sha-256",
            Hash::Sha384 => "sha-384",
            Hash::Sha512 => "sha-512",
        }
    }

    /// The hash called `name` in SDP (`sha-256`) or in the ng option
    /// `DTLS-fingerprint` (`SHA-256`), in any case, with or without the
    /// dash.
    pub fn from_name(name: &str) -> Option<Hash> {
        let bare = |s: &str| s.replace('-', "").to_ascii_lowercase();
        Hash::ALL.into_iter().find(|h| bare(h.name()) == bare(name))
    }

    fn digest(self) -> MessageDigest {
        match self {
            Hash::Sha1 => MessageDigest::sha1(),
            Hash::Sha224 => MessageDigest::sha224(),
            Hash::Sha256 => MessageDigest::sha256(),
            Hash::Sha384 => MessageDigest::sha384(),
            Hash::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// An `a=fingerprint` value: a hash and the certificate's digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The hash function.
    pub hash: Hash,
    /// The digest of the certificate (DER).
    pub digest: Vec<u8>,
}

impl Fingerprint {
    /// Parses `sha-256 AB:CD:…`; `None` for an unknown hash, a digest of
    /// the wrong length or anything malformed.
    pub fn parse(value: &str) -> Option<Fingerprint> {
        let mut words = value.split_whitespace();
        let hash = Hash::from_name(words.next()?)?;
        let hex = words.next()?;
        let digest = hex
            .split(':')
            .map(|b| match b.len() {
                2 => u8::from_str_radix(b, 16).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u8>>>()?;
        (digest.len() == hash.digest().size()).then_some(Fingerprint { hash, digest })
    }

    /// The `a=fingerprint` value.
    pub fn write(&self) -> String {
        let hex: Vec<String> = self.digest.iter().map(|b| format!("{b:02X}")).collect();
        format!("{} {}", self.hash.name(), hex.join(":"))
    }

    fn of(cert: &X509, hash: Hash) -> Result<Fingerprint, DtlsError> {
        Ok(Fingerprint {
            hash,
            digest: cert.digest(hash.digest())?.to_vec(),
        })
    }
}

/// The key type of our certificate (`--dtls-cert-cipher`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on prime256v1 (upstream's default).
    Ec,
    /// RSA with this many bits (`--dtls-rsa-key-size`).
    Rsa(u32),
}

/// Our DTLS identity: the self-signed certificate every handshake presents
/// and the OpenSSL context sessions are made from (one per daemon, made at
/// start, as upstream does).
pub struct Identity {
    ctx: SslContext,
    cert: X509,
    mtu: u32,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").field("mtu", &self.mtu).finish()
    }
}

impl Identity {
    /// Generates a key and a certificate valid for 30 days; `ciphers` is
    /// the OpenSSL cipher list (`--dtls-ciphers`), `mtu` the largest
    /// datagram a handshake sends (`--dtls-mtu`).
    pub fn new(key: KeyType, mtu: u32, ciphers: &str) -> Result<Identity, DtlsError> {
        let pkey: PKey<Private> = match key {
            KeyType::Ec => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                PKey::from_ec_key(EcKey::generate(&group)?)?
            }
            KeyType::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits)?)?,
        };
        let mut name = X509NameBuilder::new()?;
        name.append_entry_by_nid(Nid::COMMONNAME, "rtpengine")?;
        let name = name.build();
        let mut serial = BigNum::new()?;
        serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = serial.to_asn1_integer()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&name)?;
        b.set_issuer_name(&name)?;
        b.set_pubkey(&pkey)?;
        // A day back: peers with a clock slightly behind still accept it.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let day_back = i64::try_from(now.saturating_sub(86_400)).unwrap_or(0);
        let (from, until) = (Asn1Time::from_unix(day_back)?, Asn1Time::days_from_now(30)?);
        b.set_not_before(&from)?;
        b.set_not_after(&until)?;
        b.sign(&pkey, MessageDigest::sha256())?;
        let cert = b.build();

        let mut ctx = SslContextBuilder::new(SslMethod::dtls())?;
        ctx.set_certificate(&cert)?;
        ctx.set_private_key(&pkey)?;
        ctx.check_private_key()?;
        ctx.set_cipher_list(ciphers)?;
        ctx.set_tlsext_use_srtp(PROFILES)?;
        // The MTU is ours to set: the memory I/O has no path to query.
        ctx.set_options(SslOptions::NO_QUERY_MTU);
        // Peers present self-signed certificates: any is accepted here and
        // checked against the peer's a=fingerprint once the handshake is
        // done (RFC 5763 §5). A certificate is required from both sides.
        ctx.set_verify_callback(
            SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
            |_, _| true,
        );
        Ok(Identity {
            ctx: ctx.build(),
            cert,
            mtu: mtu.max(576),
        })
    }

    /// Our certificate's fingerprint with `hash`.
    pub fn fingerprint(&self, hash: Hash) -> Fingerprint {
        // Digests of a built certificate with a built-in hash do not fail;
        // an empty digest would only fail the peer's check.
        Fingerprint::of(&self.cert, hash).unwrap_or(Fingerprint {
            hash,
            digest: Vec::new(),
        })
    }
}

/// Our side of the handshake (`a=setup`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We connect (`a=setup:active`): DTLS client.
    Client,
    /// We accept (`a=setup:passive`): DTLS server.
    Server,
}

/// The SRTP master keys a handshake produced.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// The negotiated profile as an SRTP suite.
    pub suite: Suite,
    /// Master key ‖ salt of what we send.
    pub local: Vec<u8>,
    /// Master key ‖ salt of what the peer sends.
    pub remote: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("suite", &self.suite).finish()
    }
}

/// Datagrams in and out of OpenSSL: each read takes one received datagram,
/// each write is one datagram to send (OpenSSL sizes its DTLS writes to the
/// MTU and flushes per datagram).
#[derive(Default, Debug)]
struct Datagrams {
    incoming: VecDeque<Vec<u8>>,
    outgoing: Vec<Vec<u8>>,
}

impl Read for Datagrams {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.incoming.pop_front() {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Datagrams {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A handshake flight is a few datagrams; a bound keeps a confused
        // peer from growing this between two drains.
        if self.outgoing.len() < 64 {
            self.outgoing.push(buf.to_vec());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Handshaking.
    Handshake,
    /// Keys available.
    Done,
    /// Failed or closed by the peer; a new session is needed.
    Failed,
}

/// One DTLS association with one peer.
pub struct Session {
    stream: SslStream<Datagrams>,
    role: Role,
    state: State,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .field("state", &self.state)
            .finish()
    }
}

impl Session {
    /// A session in `role` presenting `id`'s certificate.
    pub fn new(id: &Identity, role: Role) -> Result<Session, DtlsError> {
        let mut ssl = Ssl::new(&id.ctx)?;
        ssl.set_mtu(id.mtu)?;
        match role {
            Role::Client => ssl.set_connect_state(),
            Role::Server => ssl.set_accept_state(),
        }
        Ok(Session {
            stream: SslStream::new(ssl, Datagrams::default())?,
            role,
            state: State::Handshake,
        })
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        self.state
    }

    /// Runs the session on one datagram from the peer, or with none (to
    /// start a client's handshake, or on a timer: OpenSSL retransmits a
    /// flight whose timer ran out). Returns the datagrams to send to the
    /// peer; [`Session::state`] tells whether keys are available now.
    pub fn drive(&mut self, datagram: Option<&[u8]>) -> Result<Vec<Vec<u8>>, DtlsError> {
        if let Some(d) = datagram {
            self.stream.get_mut().incoming.push_back(d.to_vec());
        }
        let result = match self.state {
            State::Handshake => match self.stream.do_handshake() {
                Ok(()) => {
                    self.state = State::Done;
                    Ok(())
                }
                Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                    Ok(())
                }
                Err(e) => {
                    self.state = State::Failed;
                    Err(DtlsError::Handshake(e.to_string()))
                }
            },
            // After the handshake: the peer's retransmitted last flight
            // (OpenSSL answers it) or an alert. No application data is
            // carried here (no data channels).
            State::Done => {
                let mut buf = [0u8; 2048];
                match self.stream.ssl_read(&mut buf) {
                    Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                        self.state = State::Failed;
                        Ok(())
                    }
                    Err(e) if matches!(e.code(), ErrorCode::WANT_READ | ErrorCode::WANT_WRITE) => {
                        Ok(())
                    }
                    Err(e) if e.code() == ErrorCode::SSL => {
                        self.state = State::Failed;
                        Err(DtlsError::Handshake(e.to_string()))
                    }
                    _ => Ok(()),
                }
            }
            State::Failed => Ok(()),
        };
        // Whatever was not consumed is stale (one datagram per call).
        self.stream.get_mut().incoming.clear();
        let out = std::mem::take(&mut self.stream.get_mut().outgoing);
        result.map(|()| out)
    }

    /// The SRTP keys of a finished handshake (RFC 5764 §4.2: client key,
    /// server key, client salt, server salt from the exporter).
    pub fn keys(&self) -> Result<Keys, DtlsError> {
        if self.state != State::Done {
            return Err(DtlsError::NotDone);
        }
        let ssl = self.stream.ssl();
        let profile = ssl.selected_srtp_profile().map(|p| p.id());
        let suite = match profile {
            Some(SrtpProfileId::SRTP_AES128_CM_SHA1_80) => Suite::AesCm128HmacSha1_80,
            Some(SrtpProfileId::SRTP_AES128_CM_SHA1_32) => Suite::AesCm128HmacSha1_32,
            Some(SrtpProfileId::SRTP_AEAD_AES_128_GCM) => Suite::AeadAes128Gcm,
            Some(SrtpProfileId::SRTP_AEAD_AES_256_GCM) => Suite::AeadAes256Gcm,
            _ => return Err(DtlsError::Profile),
        };
        let (k, s) = (suite.key_len(), suite.salt_len());
        let mut m = vec![0u8; 2 * (k + s)];
        ssl.export_keying_material(&mut m, "EXTRACTOR-dtls_srtp", None)?;
        let client = [&m[..k], &m[2 * k..2 * k + s]].concat();
        let server = [&m[k..2 * k], &m[2 * k + s..]].concat();
        let (local, remote) = match self.role {
            Role::Client => (client, server),
            Role::Server => (server, client),
        };
        Ok(Keys {
            suite,
            local,
            remote,
        })
    }

    /// Whether the peer's certificate matches `expected` (its
    /// `a=fingerprint`).
    pub fn peer_matches(&self, expected: &Fingerprint) -> bool {
        self.stream
            .ssl()
            .peer_certificate()
            .and_then(|c| Fingerprint::of(&c, expected.hash).ok())
            .is_some_and(|f| f == *expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs two sessions against each other until both are done.
    fn handshake(a: &mut Session, b: &mut Session) {
        let mut to_b = a.drive(None).unwrap();
        for _ in 0..20 {
            let mut to_a = Vec::new();
            for d in to_b.drain(..) {
                to_a.extend(b.drive(Some(&d)).unwrap());
            }
            for d in to_a {
                to_b.extend(a.drive(Some(&d)).unwrap());
            }
            if a.state() == State::Done && b.state() == State::Done && to_b.is_empty() {
                return;
            }
        }
        panic!("no handshake: {a:?} {b:?}");
    }

    #[test]
    fn client_and_server_agree_on_keys_and_see_each_others_fingerprint() {
        for key in [KeyType::Ec, KeyType::Rsa(2048)] {
            let ours = Identity::new(key, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap();
            let theirs = Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap();
            let mut client = Session::new(&ours, Role::Client).unwrap();
            let mut server = Session::new(&theirs, Role::Server).unwrap();
            handshake(&mut client, &mut server);
            let (c, s) = (client.keys().unwrap(), server.keys().unwrap());
            assert_eq!(c.suite, s.suite);
            assert_eq!(c.local, s.remote);
            assert_eq!(c.remote, s.local);
            assert_ne!(c.local, c.remote);
            assert_eq!(c.local.len(), c.suite.key_salt_len());
            assert!(server.peer_matches(&ours.fingerprint(Hash::Sha256)));
            assert!(client.peer_matches(&theirs.fingerprint(Hash::Sha1)));
            assert!(!client.peer_matches(&ours.fingerprint(Hash::Sha256)));
        }
    }

    /// RFC 5764 §4.2: the exporter's output is client key, server key,
    /// client salt, server salt; each side protects with its own.
    #[test]
    fn keys_are_cut_from_the_exporter_in_rfc_order() {
        let (a, b) = (
            Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap(),
            Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap(),
        );
        let mut client = Session::new(&a, Role::Client).unwrap();
        let mut server = Session::new(&b, Role::Server).unwrap();
        handshake(&mut client, &mut server);
        let keys = client.keys().unwrap();
        let (k, s) = (keys.suite.key_len(), keys.suite.salt_len());
        let mut m = vec![0u8; 2 * (k + s)];
        client
            .stream
            .ssl()
            .export_keying_material(&mut m, "EXTRACTOR-dtls_srtp", None)
            .unwrap();
        let client_write = [&m[..k], &m[2 * k..2 * k + s]].concat();
        let server_write = [&m[k..2 * k], &m[2 * k + s..]].concat();
        assert_eq!(keys.local, client_write);
        assert_eq!(keys.remote, server_write);
        assert_eq!(server.keys().unwrap().local, server_write);
    }

    #[test]
    fn every_datagram_fits_the_mtu() {
        let ours = Identity::new(KeyType::Rsa(2048), 576, DEFAULT_CIPHERS).unwrap();
        let theirs = Identity::new(KeyType::Rsa(2048), 1500, DEFAULT_CIPHERS).unwrap();
        let mut server = Session::new(&ours, Role::Server).unwrap();
        let mut client = Session::new(&theirs, Role::Client).unwrap();
        let hello = client.drive(None).unwrap();
        let mut flight = Vec::new();
        for d in hello {
            flight.extend(server.drive(Some(&d)).unwrap());
        }
        assert!(
            flight.len() > 1,
            "a certificate flight in several datagrams"
        );
        assert!(
            flight.iter().all(|d| d.len() <= 576),
            "{:?}",
            flight.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }

    #[test]
    fn garbage_fails_the_handshake_without_panicking() {
        let ours = Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap();
        let mut server = Session::new(&ours, Role::Server).unwrap();
        let mut junk = vec![22u8, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 40];
        junk.extend([0xffu8; 40]);
        let _ = server.drive(Some(&junk));
        assert_ne!(server.state(), State::Done);
        assert!(server.keys().is_err());
    }

    #[test]
    fn fingerprints_parse_and_write() {
        let id = Identity::new(KeyType::Ec, DEFAULT_MTU, DEFAULT_CIPHERS).unwrap();
        for h in Hash::ALL {
            let f = id.fingerprint(h);
            assert_eq!(Fingerprint::parse(&f.write()), Some(f));
        }
        assert_eq!(Hash::from_name("SHA-256"), Some(Hash::Sha256));
        assert_eq!(Hash::from_name("sha256"), Some(Hash::Sha256));
        assert_eq!(Fingerprint::parse("sha-256 AB:CD"), None);
        assert_eq!(Fingerprint::parse("md5 AB"), None);
        assert_eq!(Fingerprint::parse("sha-1"), None);
    }
}
