//! Sans-IO fixed-newstyle handshake: bytes from the client in, bytes to send
//! out, and finally the negotiated transmission parameters.
//!
//! No TLS (the server runs in "NOTLS" mode), no metadata contexts: those
//! options are answered with `NBD_REP_ERR_UNSUP`.

use bytes::{Buf, BufMut, BytesMut};

use crate::proto::*;

/// What the handshake tells clients about the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    pub name: String,
    pub description: String,
    pub size_bytes: u64,
    pub read_only: bool,
    /// `NBD_INFO_BLOCK_SIZE` minimum (the device's logical block size).
    pub min_block: u32,
    /// `NBD_INFO_BLOCK_SIZE` preferred.
    pub preferred_block: u32,
    /// `NBD_INFO_BLOCK_SIZE` maximum (the payload cap).
    pub max_block: u32,
    /// Offer structured replies. When false `NBD_OPT_STRUCTURED_REPLY` is
    /// refused (`NBD_REP_ERR_UNSUP`, which the spec allows) and every reply
    /// is simple: a libnbd client then reads a 4K read reply in two `recv`s
    /// instead of four, but gets no error messages and no `NBD_CMD_FLAG_DF`.
    pub structured_replies: bool,
}

impl ExportInfo {
    /// Transmission flags; `SEND_DF` only with structured replies: the
    /// server "MUST leave this flag clear if structured replies have not
    /// been negotiated".
    pub fn tx_flags(&self, structured: bool) -> u16 {
        let mut f = TX_HAS_FLAGS | TX_SEND_FLUSH | TX_SEND_FUA | TX_CAN_MULTI_CONN;
        if self.read_only {
            f |= TX_READ_ONLY;
        } else {
            f |= TX_SEND_TRIM | TX_SEND_WRITE_ZEROES;
        }
        if structured {
            f |= TX_SEND_DF;
        }
        f
    }

    fn matches(&self, name: &[u8]) -> bool {
        // "A special, "empty", name ... is reserved for a "default" export".
        name.is_empty() || name == self.name.as_bytes()
    }
}

/// Limits on what a client may send during the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Largest option data accepted (bigger: hard disconnect).
    pub max_option_len: u32,
    /// Options accepted before the client must pick an export.
    pub max_options: u32,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        // INFO/GO data is at most 4 + 4096 + 2 + 2 * n bytes.
        HandshakeLimits {
            max_option_len: 16 * 1024,
            max_options: 64,
        }
    }
}

/// What the client and server agreed on when transmission starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub structured_replies: bool,
    /// The client asked for `NBD_INFO_BLOCK_SIZE` in `NBD_OPT_GO` and so
    /// "MUST abide by the block size constraints it receives".
    pub block_size_agreed: bool,
    pub tx_flags: u16,
}

/// How the handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Enter the transmission phase (after sending the pending output).
    Transmission(Negotiated),
    /// The client sent `NBD_OPT_ABORT`: send the pending output and close.
    Abort,
}

/// Errors that end the connection with a hard disconnect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("malformed handshake: {0}")]
    Malformed(String),
    #[error("handshake protocol violation: {0}")]
    Protocol(String),
    #[error("client asked for unknown export {0:?} with NBD_OPT_EXPORT_NAME")]
    UnknownExport(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    ClientFlags,
    Options,
    Done,
}

/// The server side of the fixed-newstyle handshake.
#[derive(Debug)]
pub struct Handshake {
    export: ExportInfo,
    limits: HandshakeLimits,
    state: State,
    no_zeroes: bool,
    structured: bool,
    options: u32,
    out: Vec<u8>,
}

impl Handshake {
    /// Starts a handshake; the greeting is queued as output.
    pub fn new(export: ExportInfo, limits: HandshakeLimits) -> Self {
        let mut out = Vec::with_capacity(18);
        out.put_u64(NBDMAGIC);
        out.put_u64(IHAVEOPT);
        out.put_u16(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        Handshake {
            export,
            limits,
            state: State::ClientFlags,
            no_zeroes: false,
            structured: false,
            options: 0,
            out,
        }
    }

    /// Bytes to send to the client (drained).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Consumes complete messages from `input`. `Ok(None)`: more input is
    /// needed. Once an outcome is returned, bytes left in `input` belong to
    /// the transmission phase.
    pub fn receive(&mut self, input: &mut BytesMut) -> Result<Option<Outcome>, HandshakeError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::ClientFlags => {
                    if input.len() < 4 {
                        return Ok(None);
                    }
                    let flags = input.get_u32();
                    // "the server MUST drop the TCP connection if the client
                    // sets an unknown flag".
                    if flags & !(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES) != 0 {
                        return Err(HandshakeError::Protocol(format!(
                            "unknown client flags {flags:#x}"
                        )));
                    }
                    self.no_zeroes = flags & FLAG_C_NO_ZEROES != 0;
                    self.state = State::Options;
                }
                State::Options => {
                    if input.len() < OPTION_HEADER_LEN {
                        return Ok(None);
                    }
                    let magic = u64::from_be_bytes(input[0..8].try_into().expect("8 bytes"));
                    let opt = u32::from_be_bytes(input[8..12].try_into().expect("4 bytes"));
                    let len = u32::from_be_bytes(input[12..16].try_into().expect("4 bytes"));
                    if magic != IHAVEOPT {
                        return Err(HandshakeError::Malformed(format!(
                            "option magic {magic:#x} is not IHAVEOPT"
                        )));
                    }
                    if len > self.limits.max_option_len {
                        return Err(HandshakeError::Protocol(format!(
                            "option {opt} data length {len} exceeds {}",
                            self.limits.max_option_len
                        )));
                    }
                    if input.len() < OPTION_HEADER_LEN + len as usize {
                        return Ok(None);
                    }
                    self.options += 1;
                    if self.options > self.limits.max_options {
                        return Err(HandshakeError::Protocol(format!(
                            "more than {} options",
                            self.limits.max_options
                        )));
                    }
                    input.advance(OPTION_HEADER_LEN);
                    let data = input.split_to(len as usize);
                    if let Some(outcome) = self.option(opt, &data)? {
                        self.state = State::Done;
                        return Ok(Some(outcome));
                    }
                }
            }
        }
    }

    fn reply(&mut self, opt: u32, kind: u32, data: &[u8]) {
        self.out.put_u64(OPT_REPLY_MAGIC);
        self.out.put_u32(opt);
        self.out.put_u32(kind);
        self.out.put_u32(data.len() as u32);
        self.out.put_slice(data);
    }

    fn error(&mut self, opt: u32, kind: u32, message: &str) {
        self.reply(opt, kind, message.as_bytes());
    }

    fn option(&mut self, opt: u32, data: &[u8]) -> Result<Option<Outcome>, HandshakeError> {
        match opt {
            OPT_EXPORT_NAME => {
                if !self.export.matches(data) {
                    // "If the chosen export does not exist ... the server
                    // MUST terminate the session."
                    let name = String::from_utf8_lossy(data).into_owned();
                    return Err(HandshakeError::UnknownExport(name));
                }
                let tx_flags = self.export.tx_flags(self.structured);
                self.out.put_u64(self.export.size_bytes);
                self.out.put_u16(tx_flags);
                if !self.no_zeroes {
                    self.out.put_bytes(0, 124);
                }
                return Ok(Some(Outcome::Transmission(Negotiated {
                    structured_replies: self.structured,
                    block_size_agreed: false,
                    tx_flags,
                })));
            }
            OPT_ABORT => {
                // "The server MUST reply with NBD_REP_ACK."
                self.reply(opt, REP_ACK, &[]);
                return Ok(Some(Outcome::Abort));
            }
            OPT_LIST => {
                if !data.is_empty() {
                    self.error(opt, REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
                } else {
                    let mut d = Vec::new();
                    d.put_u32(self.export.name.len() as u32);
                    d.put_slice(self.export.name.as_bytes());
                    d.put_slice(self.export.description.as_bytes());
                    self.reply(opt, REP_SERVER, &d);
                    self.reply(opt, REP_ACK, &[]);
                }
            }
            OPT_INFO | OPT_GO => return Ok(self.info_or_go(opt, data)),
            OPT_STRUCTURED_REPLY => {
                if !data.is_empty() {
                    self.error(
                        opt,
                        REP_ERR_INVALID,
                        "NBD_OPT_STRUCTURED_REPLY takes no data",
                    );
                } else if !self.export.structured_replies {
                    self.error(opt, REP_ERR_UNSUP, "structured replies are disabled");
                } else {
                    self.structured = true;
                    self.reply(opt, REP_ACK, &[]);
                }
            }
            OPT_STARTTLS => self.error(opt, REP_ERR_UNSUP, "TLS is not supported"),
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
                self.error(opt, REP_ERR_UNSUP, "metadata contexts are not supported")
            }
            _ => self.error(opt, REP_ERR_UNSUP, "unsupported option"),
        }
        Ok(None)
    }

    fn info_or_go(&mut self, opt: u32, data: &[u8]) -> Option<Outcome> {
        let Some(request) = parse_info_request(data) else {
            self.error(
                opt,
                REP_ERR_INVALID,
                "malformed NBD_OPT_INFO/NBD_OPT_GO data",
            );
            return None;
        };
        if !self.export.matches(request.name) {
            self.error(opt, REP_ERR_UNKNOWN, "no such export");
            return None;
        }
        let tx_flags = self.export.tx_flags(self.structured);
        let mut d = Vec::with_capacity(14);
        d.put_u16(INFO_EXPORT);
        d.put_u64(self.export.size_bytes);
        d.put_u16(tx_flags);
        self.reply(opt, REP_INFO, &d);
        if request.infos.contains(&INFO_NAME) {
            let mut d = Vec::new();
            d.put_u16(INFO_NAME);
            d.put_slice(self.export.name.as_bytes());
            self.reply(opt, REP_INFO, &d);
        }
        if request.infos.contains(&INFO_DESCRIPTION) && !self.export.description.is_empty() {
            let mut d = Vec::new();
            d.put_u16(INFO_DESCRIPTION);
            d.put_slice(self.export.description.as_bytes());
            self.reply(opt, REP_INFO, &d);
        }
        // Sent even when not requested ("The server MAY send information
        // requests back which are not explicitly requested"); unaligned
        // requests from clients that did not ask are still served.
        let mut d = Vec::with_capacity(14);
        d.put_u16(INFO_BLOCK_SIZE);
        d.put_u32(self.export.min_block);
        d.put_u32(self.export.preferred_block);
        d.put_u32(self.export.max_block);
        self.reply(opt, REP_INFO, &d);
        self.reply(opt, REP_ACK, &[]);
        (opt == OPT_GO).then(|| {
            Outcome::Transmission(Negotiated {
                structured_replies: self.structured,
                block_size_agreed: request.infos.contains(&INFO_BLOCK_SIZE),
                tx_flags,
            })
        })
    }
}

struct InfoRequest<'a> {
    name: &'a [u8],
    infos: Vec<u16>,
}

/// "32 bits, length of name (unsigned); MUST be no larger than the option
/// data length - 6", name, 16 bits count, count x 16 bits info types.
fn parse_info_request(data: &[u8]) -> Option<InfoRequest<'_>> {
    let name_len = u32::from_be_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    if name_len > data.len().checked_sub(6)? || name_len > MAX_STRING_LEN {
        return None;
    }
    let name = &data[4..4 + name_len];
    let rest = &data[4 + name_len..];
    let count = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let list = &rest[2..];
    if list.len() != count * 2 {
        return None;
    }
    let infos = list
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    Some(InfoRequest { name, infos })
}
