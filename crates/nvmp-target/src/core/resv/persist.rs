//! The PTPL file of a namespace: its reservation state as JSON, replaced
//! atomically (write a temporary file, sync it, rename it over the old one).
//! A file that does not parse or breaks an invariant is ignored with a
//! warning: the namespace then starts without registrants.

use std::io::Write;
use std::path::Path;

use super::{ResvState, MAX_REGISTRANTS};

/// Bound on the file read back (256 registrants take about 40 KiB).
const MAX_FILE_BYTES: u64 = 1 << 20;

pub fn load(path: &Path) -> Option<ResvState> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_FILE_BYTES {
        tracing::warn!(path = %path.display(), "reservation PTPL file too large: ignored");
        return None;
    }
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the reservation PTPL file");
            return None;
        }
    };
    let st: ResvState = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "reservation PTPL file does not parse: ignored");
            return None;
        }
    };
    let holder_ok = match st.holder {
        Some(h) => st.rtype != 0 && st.regs.iter().any(|r| r.hostid == h),
        None => st.rtype == 0,
    };
    if !st.ptpl || st.regs.len() > MAX_REGISTRANTS || st.rtype > 6 || !holder_ok {
        tracing::warn!(path = %path.display(), "reservation PTPL file inconsistent: ignored");
        return None;
    }
    tracing::info!(path = %path.display(), registrants = st.regs.len(), rtype = st.rtype, "reservations restored (PTPL)");
    Some(st)
}

pub fn store(path: &Path, st: &ResvState) {
    let res = (|| -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(st).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself reaches the disk with the directory.
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    })();
    if let Err(e) = res {
        tracing::error!(path = %path.display(), error = %e, "cannot write the reservation PTPL file");
    }
}

pub fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the reservation PTPL file");
        }
    }
}
