//! Lower-case hex, for checksums in the ledger, sidecars and logs.

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
