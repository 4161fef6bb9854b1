//! SDP: a parser that keeps every line it does not interpret, and a writer
//! that produces upstream rtpengine's current layout.
//!
//! Why not an existing crate: `sdp-types` and `webrtc-sdp` parse into typed
//! models that drop or reorder unknown lines and attributes, or reject SDP that
//! real phones send; a media proxy must pass everything it does not
//! understand through, in order. The format is line-based and small, so the
//! parser here is a few hundred lines with a test for every error path.

pub mod attr_ops;
pub mod codecs;
mod fragment;
mod parse;
mod write;

pub use fragment::{parse_fragment, FragmentError, FragmentSection};
pub use parse::{parse, SdpError};
pub use write::{write, IceLines, IceOut, MediaOut, RtcpOut, SessionOut};

use std::net::IpAddr;

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `o=` line.
    pub origin: Origin,
    /// `s=` value.
    pub name: String,
    /// `i=`, `u=`, `e=`, `p=` lines (type, value), in order.
    pub info: Vec<(char, String)>,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// Session-level `b=` values.
    pub bandwidth: Vec<String>,
    /// `t=`, `r=`, `z=` lines (type, value), in order.
    pub timing: Vec<(char, String)>,
    /// Session-level attributes (and `k=` lines as attributes named `k=`), in order.
    pub attributes: Vec<Attribute>,
    /// Media sections.
    pub media: Vec<Media>,
}

/// The `o=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: String,
    /// Session version (kept as text; may exceed 64 bits in the wild).
    pub version: String,
    /// Network type (`IN`).
    pub net_type: String,
    /// Address type (`IP4`/`IP6`).
    pub addr_type: String,
    /// Address (kept as text: may be a host name).
    pub address: String,
}

/// A `c=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The address.
    pub address: IpAddr,
}

/// An `a=` line: `a=name` or `a=name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Text before the first `:`.
    pub name: String,
    /// Text after it.
    pub value: Option<String>,
}

/// A media section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `audio`, `video`, …
    pub kind: String,
    /// Port from `m=` (0 = rejected).
    pub port: u16,
    /// `/<count>` from `m=`, if given.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP`.
    pub protocol: String,
    /// Formats (payload types for RTP).
    pub formats: Vec<String>,
    /// `i=` value.
    pub info: Option<String>,
    /// Media-level `c=`.
    pub connection: Option<Connection>,
    /// `b=` values.
    pub bandwidth: Vec<String>,
    /// Attributes (and `k=` lines as attributes named `k=`), in order.
    pub attributes: Vec<Attribute>,
}

/// Media direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    fn parse(name: &str) -> Option<Direction> {
        Some(match name {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the party sends media in this direction state.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl Session {
    /// The first attribute named `name` at session level.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Session-level direction attribute, if any.
    pub fn direction(&self) -> Option<Direction> {
        self.attributes
            .iter()
            .find_map(|a| Direction::parse(&a.name))
    }
}

impl Media {
    /// The first attribute named `name`.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Whether an attribute named `name` is present.
    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    /// Effective connection address: media `c=`, else the session's.
    pub fn address(&self, session: &Session) -> Option<IpAddr> {
        self.connection.or(session.connection).map(|c| c.address)
    }

    /// Effective direction: media attribute, else session attribute, else sendrecv.
    pub fn direction(&self, session: &Session) -> Direction {
        self.attributes
            .iter()
            .find_map(|a| Direction::parse(&a.name))
            .or_else(|| session.direction())
            .unwrap_or(Direction::SendRecv)
    }

    /// RTCP port and optional address from `a=rtcp:` (RFC 3605).
    pub fn rtcp_attr(&self) -> Option<(u16, Option<IpAddr>)> {
        let v = self.attr("rtcp")?.value.as_deref()?;
        let mut it = v.split_whitespace();
        let port = it.next()?.parse().ok()?;
        let addr = match (it.next(), it.next(), it.next()) {
            (Some("IN"), Some(_), Some(a)) => a.parse().ok(),
            _ => None,
        };
        Some((port, addr))
    }

    /// Whether `a=rtcp-mux` is present.
    pub fn rtcp_mux(&self) -> bool {
        self.has_attr("rtcp-mux")
    }

    /// Sets the first attribute named `name` to `value`, or appends one.
    pub fn set_attr(&mut self, name: &str, value: Option<String>) {
        match self.attributes.iter_mut().find(|a| a.name == name) {
            Some(a) => a.value = value,
            None => self.attributes.push(Attribute {
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Media over TCP (MSRP, BFCP, RFC 4571 RTP): not relayed, passed
    /// through as received.
    pub fn is_passthrough(&self) -> bool {
        self.protocol
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("TCP"))
    }

    /// Whether the media carries RTP (and so RTCP) by its protocol.
    pub fn is_rtp(&self) -> bool {
        self.protocol.contains("RTP/")
    }
}

/// Clock rates and names of the static RTP payload types (RFC 3551), for the
/// `a=rtpmap` lines upstream synthesises.
pub fn static_rtpmap(pt: &str) -> Option<&'static str> {
    Some(match pt {
        "0" => "PCMU/8000",
        "3" => "GSM/8000",
        "4" => "G723/8000",
        "5" => "DVI4/8000",
        "6" => "DVI4/16000",
        "7" => "LPC/8000",
        "8" => "PCMA/8000",
        "9" => "G722/8000",
        "10" => "L16/44100/2",
        "11" => "L16/44100",
        "12" => "QCELP/8000",
        "13" => "CN/8000",
        "14" => "MPA/90000",
        "15" => "G728/8000",
        "16" => "DVI4/11025",
        "17" => "DVI4/22050",
        "18" => "G729/8000",
        "25" => "CelB/90000",
        "26" => "JPEG/90000",
        "28" => "nv/90000",
        "31" => "H261/90000",
        "32" => "MPV/90000",
        "33" => "MP2T/90000",
        "34" => "H263/90000",
        _ => return None,
    })
}
