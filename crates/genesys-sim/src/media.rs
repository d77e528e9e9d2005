//! The simulator's media: deterministic bytes and signed, expiring URLs.
//!
//! A recording's bytes are a pure function of its id and size, so tests and the load
//! test can compute the expected checksum without keeping any copy, and a 2 GiB
//! recording is served from a 64 KiB buffer.

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Size of the chunks the simulator streams.
pub const CHUNK: usize = 64 * 1024;

/// FNV-1a: a stable seed from an id.
pub fn seed_of(recording_id: &str) -> u64 {
    recording_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `index`th chunk of a recording of `size` bytes (shorter at the end, empty past it).
pub fn chunk(seed: u64, size: u64, index: u64) -> Bytes {
    let start = index.saturating_mul(CHUNK as u64);
    let len = size.saturating_sub(start).min(CHUNK as u64) as usize;
    let mut buf = vec![0u8; len];
    let first_block = start / 8;
    for (i, block) in buf.chunks_mut(8).enumerate() {
        let word = splitmix(seed ^ (first_block + i as u64).wrapping_mul(0xd6e8_feb8_6659_fd93)).to_le_bytes();
        block.copy_from_slice(&word[..block.len()]);
    }
    Bytes::from(buf)
}

/// Number of chunks of a recording of `size` bytes.
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64)
}

/// SHA-256 (hex) of a recording's bytes, computed the way the simulator serves them.
pub fn expected_sha256(recording_id: &str, size: u64) -> String {
    let seed = seed_of(recording_id);
    let mut hasher = Sha256::new();
    for i in 0..chunk_count(size) {
        hasher.update(chunk(seed, size, i));
    }
    hex(&hasher.finalize())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The signature of a download URL: binds the recording and the expiry to the
/// simulator's secret, so a URL cannot be extended or reused for another recording.
pub fn signature(secret: &str, recording_id: &str, expires_ms: i64) -> String {
    let mut hasher = Sha256::new();
    hasher.update(secret.as_bytes());
    hasher.update([0]);
    hasher.update(recording_id.as_bytes());
    hasher.update([0]);
    hasher.update(expires_ms.to_string().as_bytes());
    hex(&hasher.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_deterministic_and_sized() {
        let a = chunk(seed_of("r1"), 100_000, 1);
        assert_eq!(a.len(), 100_000 - CHUNK);
        assert_eq!(a, chunk(seed_of("r1"), 100_000, 1));
        assert_ne!(chunk(seed_of("r1"), 100_000, 0), chunk(seed_of("r2"), 100_000, 0));
        assert!(chunk(seed_of("r1"), 100_000, 2).is_empty());
        assert_eq!(
            expected_sha256("r1", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
