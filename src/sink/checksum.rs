//! The additional checksum S3 verifies on receipt (`x-amz-checksum-*`), computed while
//! the body streams through: a part's as it is sent, the whole object's as the parts go
//! by, never a second read.
//!
//! A checksum is kept as S3 shows it, prefixed with its algorithm: `SHA256:<base64>`,
//! a multipart SHA-256 as the composite S3 keeps (`SHA256:<base64>-<parts>`), CRC64NVME
//! always of the whole object.

use super::settings::ChecksumAlgorithm;
use aws_smithy_checksums::ChecksumAlgorithm as Smithy;
use aws_smithy_checksums::http::HttpChecksum;

impl ChecksumAlgorithm {
    fn smithy(self) -> Option<Smithy> {
        match self {
            ChecksumAlgorithm::Sha256 => Some(Smithy::Sha256),
            ChecksumAlgorithm::Crc64Nvme => Some(Smithy::Crc64Nvme),
            ChecksumAlgorithm::Off => None,
        }
    }

    /// The checksum of `bytes` as S3's header carries it (base64), `None` when off.
    pub fn of(self, bytes: &[u8]) -> Option<String> {
        let mut running = self.running()?;
        running.update(bytes);
        Some(running.finish())
    }

    /// A checksum to feed as the bytes go by, `None` when off.
    pub fn running(self) -> Option<Running> {
        self.smithy().map(|a| Running(a.into_impl()))
    }

    /// `value` (base64) in the form the archive keeps: `ALGORITHM:value`.
    pub fn label(self, value: &str) -> String {
        format!("{}:{value}", self.as_str())
    }
}

/// A checksum being computed.
pub struct Running(Box<dyn HttpChecksum>);

impl Running {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The value, base64 as in S3's headers.
    pub fn finish(self) -> String {
        aws_smithy_types::base64::encode(self.0.finalize())
    }
}

/// The checksum S3 keeps for an object written in `parts` (their base64 checksums, in
/// order) whose whole body's checksum is `whole`: a single upload's is the body's; a
/// multipart SHA-256 is composite (the SHA-256 of the parts' digests, `-N`); a
/// multipart CRC64NVME is the whole object's (S3's FULL_OBJECT type).
pub fn object_checksum(algorithm: ChecksumAlgorithm, whole: &str, parts: &[String]) -> Option<String> {
    match algorithm {
        ChecksumAlgorithm::Off => None,
        ChecksumAlgorithm::Sha256 if parts.len() > 1 => {
            let mut digests = Vec::with_capacity(parts.len() * 32);
            for part in parts {
                digests.extend(aws_smithy_types::base64::decode(part).ok()?);
            }
            let composite = algorithm.of(&digests)?;
            Some(algorithm.label(&format!("{composite}-{}", parts.len())))
        }
        _ => Some(algorithm.label(whole)),
    }
}

/// Whether the checksum S3 reports is the one written. A composite's `-N` suffix is
/// compared when both carry it (some S3-compatible stores, moto among them, leave it
/// out of what they report).
pub fn same(written: &str, reported: &str) -> bool {
    fn value(s: &str) -> &str {
        s.rsplit_once('-')
            .filter(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(s, |(v, _)| v)
    }
    written == reported || value(written) == value(reported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_a_single_upload_is_the_body_s_digest() {
        // SHA-256("hello"), base64.
        assert_eq!(
            ChecksumAlgorithm::Sha256.of(b"hello").unwrap(),
            "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
        );
        assert_eq!(ChecksumAlgorithm::Off.of(b"hello"), None);
    }

    #[test]
    fn a_multipart_sha256_is_composite_and_crc64nvme_covers_the_whole_object() {
        let (a, b) = (vec![1u8; 1000], vec![2u8; 10]);
        let sha = ChecksumAlgorithm::Sha256;
        let parts = [sha.of(&a).unwrap(), sha.of(&b).unwrap()];
        let composite = object_checksum(sha, "ignored", &parts).unwrap();
        assert!(
            composite.starts_with("SHA256:") && composite.ends_with("-2"),
            "{composite}"
        );
        let crc = ChecksumAlgorithm::Crc64Nvme;
        let mut whole = crc.running().unwrap();
        whole.update(&a);
        whole.update(&b);
        let whole = whole.finish();
        assert_eq!(whole, crc.of(&[a, b].concat()).unwrap(), "incremental = at once");
        assert_eq!(
            object_checksum(crc, &whole, &["x".into(), "y".into()]).unwrap(),
            format!("CRC64NVME:{whole}")
        );
    }

    #[test]
    fn a_reported_composite_may_leave_its_part_count_out() {
        assert!(same("SHA256:abc=-3", "SHA256:abc=-3"));
        assert!(same("SHA256:abc=-3", "SHA256:abc="));
        assert!(!same("SHA256:abc=-3", "SHA256:abd=-3"));
        assert!(!same("SHA256:abc=", "CRC64NVME:abc="));
    }
}
