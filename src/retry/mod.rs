//! Retries, in three separate parts:
//! - [`classify`] decides *whether* an answer is worth another attempt;
//! - [`retry_after`] reads *when* the platform asked us to come back;
//! - [`backoff`] says *when* to come back if it did not (full-jitter exponential).
//!
//! The Genesys transport (`genesys::transport`) combines them with `backon`; every
//! attempt goes through the rate budget again, because the budget is the platform's.

pub mod backoff;
pub mod classify;
pub mod retry_after;
pub mod settings;
