//! `nvmp io read|write|verify`: block I/O on a namespace head.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Subcommand};
use nvmp_mpath::{Multipath, NamespaceHead};

use crate::output::OutputFormat;
use crate::paths::PathArgs;
use crate::size::parse_size;

#[derive(Debug, Subcommand)]
pub enum IoCmd {
    /// Read a range to a file or stdout.
    Read(IoArgs),
    /// Write a range from a file or stdin.
    Write(IoArgs),
    /// Write a pattern that encodes offset and generation, read it back and check it.
    Verify(IoArgs),
}

#[derive(Debug, Args)]
pub struct IoArgs {
    #[command(flatten)]
    pub paths: PathArgs,
    /// Namespace ID.
    #[arg(long = "nsid", default_value_t = 1)]
    pub nsid: u32,
    /// Byte offset (suffixes: 4k, 8MiB, 1G); a multiple of the block size.
    #[arg(long = "offset", value_parser = parse_size, default_value = "0")]
    pub offset: u64,
    /// Bytes to transfer (suffixes); write: defaults to the input's length.
    #[arg(long = "size", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Input file for write (default stdin).
    #[arg(long = "input", short = 'd', alias = "data")]
    pub input: Option<PathBuf>,
    /// Output file for read (default stdout).
    #[arg(long = "output", short = 'O')]
    pub output_file: Option<PathBuf>,
    /// Generation number for verify (default: derived from the clock).
    #[arg(long = "generation")]
    pub generation: Option<u64>,
    /// Transfer size per command for verify (suffixes).
    #[arg(long = "bs", value_parser = parse_size, default_value = "128k")]
    pub bs: u64,
    /// Output format (verify's summary).
    #[arg(short = 'o', long = "output-format", value_enum, default_value_t)]
    pub output: OutputFormat,
}

/// Connect the paths and find the head of `nsid`.
pub async fn open_head(paths: &PathArgs, nsid: u32) -> Result<(Multipath, Arc<NamespaceHead>)> {
    let (mp, _) = crate::connect::multipath(paths, Default::default()).await?;
    let head = mp.subsystems().iter().find_map(|s| s.head(nsid));
    match head {
        Some(h) => Ok((mp, h)),
        None => {
            let subs: Vec<String> = mp.subsystems().iter().map(|s| s.nqn.clone()).collect();
            mp.shutdown().await;
            bail!("namespace {nsid} not found in {}", subs.join(", "))
        }
    }
}

fn check_range(h: &NamespaceHead, offset: u64, size: u64) -> Result<()> {
    let bs = h.block_size() as u64;
    if !offset.is_multiple_of(bs) || !size.is_multiple_of(bs) {
        bail!("offset {offset} and size {size} must be multiples of the block size {bs}");
    }
    if size == 0 {
        bail!("size must not be 0");
    }
    if offset
        .checked_add(size)
        .is_none_or(|e| e > h.capacity_bytes())
    {
        bail!(
            "range {offset}+{size} is beyond the end of {} ({} bytes)",
            h.name,
            h.capacity_bytes()
        );
    }
    Ok(())
}

fn chunk_bytes(h: &NamespaceHead, want: u64) -> u64 {
    let bs = h.block_size() as u64;
    (want.clamp(bs, 16 << 20) / bs) * bs
}

async fn read(h: &NamespaceHead, a: &IoArgs) -> Result<()> {
    let size = a.size.context("read needs --size")?;
    check_range(h, a.offset, size)?;
    let bs = h.block_size() as u64;
    let mut out: Box<dyn Write> = match &a.output_file {
        Some(p) => {
            Box::new(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let step = chunk_bytes(h, 4 << 20);
    let mut done = 0;
    while done < size {
        let n = step.min(size - done);
        let d = h
            .read((a.offset + done) / bs, (n / bs) as u32)
            .await
            .map_err(|e| anyhow!("read at {}: {e}", a.offset + done))?;
        out.write_all(&d).context("writing the output")?;
        done += n;
    }
    out.flush()?;
    Ok(())
}

async fn write(h: &NamespaceHead, a: &IoArgs) -> Result<()> {
    let mut data = Vec::new();
    match &a.input {
        Some(p) => {
            std::fs::File::open(p)
                .with_context(|| format!("opening {}", p.display()))?
                .read_to_end(&mut data)?;
        }
        None => {
            std::io::stdin()
                .lock()
                .read_to_end(&mut data)
                .context("reading stdin")?;
        }
    }
    if let Some(s) = a.size {
        if (data.len() as u64) < s {
            bail!("input has {} bytes, --size asks for {s}", data.len());
        }
        data.truncate(s as usize);
    }
    let size = data.len() as u64;
    check_range(h, a.offset, size)?;
    let bs = h.block_size() as u64;
    let data = Bytes::from(data);
    let step = chunk_bytes(h, 4 << 20);
    let mut done = 0;
    while done < size {
        let n = step.min(size - done);
        h.write(
            (a.offset + done) / bs,
            data.slice(done as usize..(done + n) as usize),
            false,
        )
        .await
        .map_err(|e| anyhow!("write at {}: {e}", a.offset + done))?;
        done += n;
    }
    h.flush().await.map_err(|e| anyhow!("flush: {e}"))?;
    eprintln!(
        "nvmp: wrote {size} bytes at offset {} of {}",
        a.offset, h.name
    );
    Ok(())
}

async fn verify(h: &NamespaceHead, a: &IoArgs) -> Result<()> {
    let size = a.size.context("verify needs --size")?;
    check_range(h, a.offset, size)?;
    let bs = h.block_size() as u64;
    let generation = a.generation.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let step = chunk_bytes(h, a.bs);
    let t0 = std::time::Instant::now();
    let mut done = 0;
    while done < size {
        let n = step.min(size - done);
        let off = a.offset + done;
        let buf = crate::pattern::make(n as usize, off, generation);
        h.write(off / bs, Bytes::from(buf), false)
            .await
            .map_err(|e| anyhow!("write at {off}: {e}"))?;
        done += n;
    }
    h.flush().await.map_err(|e| anyhow!("flush: {e}"))?;
    let mut done = 0;
    let mut errors = 0u64;
    let mut first = None;
    while done < size {
        let n = step.min(size - done);
        let off = a.offset + done;
        let d = h
            .read(off / bs, (n / bs) as u32)
            .await
            .map_err(|e| anyhow!("read at {off}: {e}"))?;
        if let Err(m) = crate::pattern::check(&d, off, generation) {
            errors += 1;
            first.get_or_insert(m.to_string());
        }
        done += n;
    }
    let secs = t0.elapsed().as_secs_f64();
    if a.output.is_json() {
        crate::output::print_json(&serde_json::json!({
            "device": h.name, "offset": a.offset, "size": size, "generation": generation,
            "errors": errors, "first_error": first, "seconds": secs,
        }))?;
    } else {
        println!(
            "verify {}: {} bytes at offset {} generation {generation}: {} ({:.2}s)",
            h.name,
            size,
            a.offset,
            if errors == 0 {
                "OK".to_string()
            } else {
                format!("{errors} bad chunks")
            },
            secs
        );
    }
    if let Some(f) = first {
        bail!("verify failed: {f}");
    }
    Ok(())
}

pub async fn run(cmd: IoCmd) -> Result<()> {
    let a = match &cmd {
        IoCmd::Read(a) | IoCmd::Write(a) | IoCmd::Verify(a) => a,
    };
    let (mp, h) = open_head(&a.paths, a.nsid).await?;
    let r = match &cmd {
        IoCmd::Read(a) => read(&h, a).await,
        IoCmd::Write(a) => write(&h, a).await,
        IoCmd::Verify(a) => verify(&h, a).await,
    };
    mp.shutdown().await;
    r
}
