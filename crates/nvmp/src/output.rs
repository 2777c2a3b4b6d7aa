//! Output formats (`-o normal|json`, as nvme-cli's `--output-format`).

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    #[default]
    Normal,
    Json,
}

impl OutputFormat {
    pub fn is_json(self) -> bool {
        self == OutputFormat::Json
    }
}

/// Print a value as pretty JSON (nvme-cli prints indented JSON).
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Lowercase hex of bytes (nvme-cli prints NGUID / EUI-64 this way).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A NUL/space padded identify string, trimmed.
pub fn trim_id(s: &str) -> &str {
    s.trim_end_matches(['\0', ' '])
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn helpers() {
        assert_eq!(hex(&[0, 0xab, 1]), "00ab01");
        assert_eq!(trim_id("nvmp  \0\0"), "nvmp");
    }
}
