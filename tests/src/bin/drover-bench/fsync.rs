//! What one durable write costs on this disk: the floor under every group commit.

use crate::stats::Samples;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

pub fn fsync_latency(dir: &Path, rounds: usize) -> std::io::Result<Samples> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let page = [0x5au8; 4096];
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        file.seek(SeekFrom::Start(0))?;
        let started = Instant::now();
        file.write_all(&page)?;
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    std::fs::remove_file(path)?;
    Ok(Samples::new(samples))
}
