//! CRC32C (Castagnoli), the NVMe/TCP header and data digest.
//!
//! NVMe/TCP 3.6.2.8: "HDGST … CRC32C … computed over the PDU header";
//! the digest is carried in little-endian byte order.

/// CRC32C of `data` (standard: reflected, initial and final XOR 0xFFFFFFFF).
#[inline]
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Continue a CRC32C over more data (for digests over scattered buffers).
#[inline]
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }
    #[test]
    fn append_equals_whole() {
        let a = crc32c_append(crc32c(b"12345"), b"6789");
        assert_eq!(a, 0xE306_9283);
    }
    #[test]
    fn empty() {
        assert_eq!(crc32c(b""), 0);
    }
}
