//! A minimal blocking NBD client speaking raw bytes, for protocol tests.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use nvmp_nbd::codec::RequestHeader;
use nvmp_nbd::proto::*;

pub struct RawClient {
    pub s: TcpStream,
    pub structured: bool,
    pub size: u64,
    pub tx_flags: u16,
    pending_reads: HashMap<u64, u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub cookie: u64,
    pub error: u32,
    pub message: String,
    pub data: Vec<u8>,
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

impl RawClient {
    /// Fixed newstyle, NO_ZEROES, optional structured replies, then
    /// NBD_OPT_GO with an NBD_INFO_BLOCK_SIZE request.
    pub fn connect(port: u16, name: &str, structured: bool) -> Self {
        let mut s = connect(port);
        let mut greeting = [0u8; 18];
        s.read_exact(&mut greeting).expect("greeting");
        assert_eq!(&greeting[..16], b"NBDMAGICIHAVEOPT");
        s.write_all(&3u32.to_be_bytes()).expect("client flags");
        let mut c = RawClient {
            s,
            structured,
            size: 0,
            tx_flags: 0,
            pending_reads: HashMap::new(),
        };
        if structured {
            c.option(OPT_STRUCTURED_REPLY, &[]);
            let (kind, _) = c.option_reply(OPT_STRUCTURED_REPLY);
            assert_eq!(kind, REP_ACK);
        }
        let mut d = (name.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(name.as_bytes());
        d.extend_from_slice(&[0, 1, 0, 3]);
        c.option(OPT_GO, &d);
        loop {
            let (kind, data) = c.option_reply(OPT_GO);
            match kind {
                REP_ACK => break,
                REP_INFO if data[..2] == [0, 0] => {
                    c.size = u64::from_be_bytes(data[2..10].try_into().unwrap());
                    c.tx_flags = u16::from_be_bytes([data[10], data[11]]);
                }
                REP_INFO => {}
                other => panic!("GO failed with {other:#x}"),
            }
        }
        c
    }

    pub fn option(&mut self, opt: u32, data: &[u8]) {
        let mut v = IHAVEOPT.to_be_bytes().to_vec();
        v.extend_from_slice(&opt.to_be_bytes());
        v.extend_from_slice(&(data.len() as u32).to_be_bytes());
        v.extend_from_slice(data);
        self.s.write_all(&v).expect("send option");
    }

    pub fn option_reply(&mut self, opt: u32) -> (u32, Vec<u8>) {
        let mut h = [0u8; 20];
        self.s.read_exact(&mut h).expect("option reply");
        assert_eq!(
            u64::from_be_bytes(h[..8].try_into().unwrap()),
            OPT_REPLY_MAGIC
        );
        assert_eq!(u32::from_be_bytes(h[8..12].try_into().unwrap()), opt);
        let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        let mut data = vec![0; len as usize];
        self.s.read_exact(&mut data).expect("option reply data");
        (kind, data)
    }

    pub fn send(
        &mut self,
        command: u16,
        flags: u16,
        cookie: u64,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) {
        let h = RequestHeader {
            flags,
            command,
            cookie,
            offset,
            length,
        };
        let mut v = h.encode().to_vec();
        v.extend_from_slice(payload);
        self.s.write_all(&v).expect("send request");
        if command == CMD_READ {
            self.pending_reads.insert(cookie, length);
        }
    }

    pub fn recv(&mut self) -> Reply {
        let mut magic = [0u8; 4];
        self.s.read_exact(&mut magic).expect("reply magic");
        match u32::from_be_bytes(magic) {
            SIMPLE_REPLY_MAGIC => {
                let mut h = [0u8; 12];
                self.s.read_exact(&mut h).expect("simple reply");
                let error = u32::from_be_bytes(h[..4].try_into().unwrap());
                let cookie = u64::from_be_bytes(h[4..].try_into().unwrap());
                let len = self.pending_reads.remove(&cookie).unwrap_or(0);
                let mut data = vec![0; if error == 0 { len as usize } else { 0 }];
                self.s.read_exact(&mut data).expect("read data");
                Reply {
                    cookie,
                    error,
                    message: String::new(),
                    data,
                }
            }
            STRUCTURED_REPLY_MAGIC => self.recv_structured(),
            m => panic!("bad reply magic {m:#x}"),
        }
    }

    /// Reads chunks until DONE (chunks of one reply are not interleaved by
    /// this server).
    fn recv_structured(&mut self) -> Reply {
        let mut reply = Reply {
            cookie: 0,
            error: 0,
            message: String::new(),
            data: Vec::new(),
        };
        let mut first = true;
        loop {
            if !first {
                let mut magic = [0u8; 4];
                self.s.read_exact(&mut magic).expect("chunk magic");
                assert_eq!(u32::from_be_bytes(magic), STRUCTURED_REPLY_MAGIC);
            }
            first = false;
            let mut h = [0u8; 16];
            self.s.read_exact(&mut h).expect("chunk header");
            let flags = u16::from_be_bytes([h[0], h[1]]);
            let kind = u16::from_be_bytes([h[2], h[3]]);
            reply.cookie = u64::from_be_bytes(h[4..12].try_into().unwrap());
            let len = u32::from_be_bytes(h[12..16].try_into().unwrap());
            let mut p = vec![0; len as usize];
            self.s.read_exact(&mut p).expect("chunk payload");
            match kind {
                REPLY_TYPE_NONE => assert_eq!(len, 0),
                REPLY_TYPE_OFFSET_DATA => reply.data.extend_from_slice(&p[8..]),
                REPLY_TYPE_ERROR => {
                    reply.error = u32::from_be_bytes(p[..4].try_into().unwrap());
                    let mlen = u16::from_be_bytes([p[4], p[5]]) as usize;
                    reply.message = String::from_utf8_lossy(&p[6..6 + mlen]).into_owned();
                }
                k => panic!("unexpected chunk type {k}"),
            }
            if flags & REPLY_FLAG_DONE != 0 {
                self.pending_reads.remove(&reply.cookie);
                return reply;
            }
        }
    }

    /// Sends one request and waits for its reply.
    pub fn call(
        &mut self,
        command: u16,
        flags: u16,
        offset: u64,
        length: u32,
        payload: &[u8],
    ) -> Reply {
        self.send(command, flags, 7, offset, length, payload);
        let r = self.recv();
        assert_eq!(r.cookie, 7);
        r
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let r = self.call(CMD_WRITE, 0, offset, data.len() as u32, data);
        assert_eq!(r.error, 0, "write at {offset}: {}", r.message);
    }

    pub fn read(&mut self, offset: u64, len: u32) -> Vec<u8> {
        let r = self.call(CMD_READ, 0, offset, len, &[]);
        assert_eq!(r.error, 0, "read at {offset}: {}", r.message);
        assert_eq!(r.data.len(), len as usize);
        r.data
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        is_closed(&mut self.s)
    }
}

/// Reads until EOF (true) or timeout/unexpected data (false).
pub fn is_closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}
