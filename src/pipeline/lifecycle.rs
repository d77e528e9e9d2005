//! When a conversation is looked at again: the lifecycle policy, apart from storage.
//!
//! Screen recordings are uploaded by the agent's desktop *after* the session and are
//! first listed as `UPLOADING`, so a conversation read once while it is still going on
//! would lose them. Every discovered conversation therefore has a lifecycle row:
//! - `active` (no `conversationEnd` yet): re-read in batches (one analytics call answers
//!   up to 100 of them) at intervals that start at `poll_interval` and double up to
//!   `recheck_max`;
//! - `ended`: its recordings are listed once `settle_after_end` has passed since its end
//!   (listing earlier mostly finds `UPLOADING` and costs a second call), and again, at
//!   growing intervals, while any of its screen recordings is not ready;
//! - `settled`: ended, `settle_after_end` passed, nothing left to list. Its recordings
//!   are followed in the recordings table from then on.
//!
//! These functions only decide; [`crate::ledger::Ledger`] stores what they decide.

use crate::genesys::model::ConversationSummary;
use crate::ledger::{ConversationRow, ConversationState};
use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Lifecycle {
    pub poll_interval: Duration,
    pub settle_after_end: Duration,
    pub recheck_max: Duration,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Lifecycle {
    /// The wait before look number `checks + 1`: `poll_interval`, doubling, at most `recheck_max`.
    pub fn interval(&self, checks: u32) -> Duration {
        self.poll_interval
            .saturating_mul(1u32 << checks.min(20))
            .min(self.recheck_max)
    }

    /// When an ended conversation's recordings are first worth listing. Kept even when
    /// it is already past: a pass finds a poll interval's worth of ended conversations
    /// at once, and listings are claimed in this order, so the one that ended first is
    /// listed first instead of behind the whole burst.
    fn first_listing(&self, end: DateTime<Utc>) -> DateTime<Utc> {
        end + chrono(self.settle_after_end)
    }

    fn ended(&self, c: &ConversationSummary, end: DateTime<Utc>) -> ConversationRow {
        ConversationRow {
            conversation_id: c.conversation_id.clone(),
            start: c.conversation_start,
            end: Some(end),
            state: ConversationState::Ended,
            checks: 0,
            next_check_at: Some(self.first_listing(end)),
            reason: None,
        }
    }

    /// The row of a conversation seen for the first time.
    pub fn discovered(&self, c: &ConversationSummary, now: DateTime<Utc>) -> ConversationRow {
        match c.conversation_end {
            Some(end) => self.ended(c, end),
            None => ConversationRow {
                conversation_id: c.conversation_id.clone(),
                start: c.conversation_start,
                end: None,
                state: ConversationState::Active,
                checks: 0,
                next_check_at: Some(now + chrono(self.interval(0))),
                reason: None,
            },
        }
    }

    /// A known conversation read again (the overlap, or a batched re-read): the new row
    /// if anything changed. Only an active conversation learns anything from it.
    pub fn seen_again(
        &self,
        row: &ConversationRow,
        c: &ConversationSummary,
        now: DateTime<Utc>,
    ) -> Option<ConversationRow> {
        if row.state != ConversationState::Active {
            return None;
        }
        Some(match c.conversation_end {
            Some(end) => self.ended(c, end),
            None => self.still_active(row, now),
        })
    }

    /// An active conversation that is still going on (or not answered for): look later.
    /// The interval is shortened by up to a fifth, by a spread fixed per conversation and
    /// look, so conversations discovered together (a first pass, a backlog) do not stay
    /// in one clump that is re-read as a burst every interval.
    pub fn still_active(&self, row: &ConversationRow, now: DateTime<Utc>) -> ConversationRow {
        let checks = row.checks.saturating_add(1);
        let interval = self.interval(checks).mul_f64(spread(&row.conversation_id, checks));
        ConversationRow {
            checks,
            next_check_at: Some(now + chrono(interval)),
            ..row.clone()
        }
    }

    /// An active conversation that analytics can no longer answer for (its start is
    /// beyond the synchronous query's reach): treated as ended now, so its recordings
    /// are listed rather than waited for forever.
    pub fn presumed_ended(&self, row: &ConversationRow, now: DateTime<Utc>) -> ConversationRow {
        ConversationRow {
            end: Some(now),
            state: ConversationState::Ended,
            checks: 0,
            next_check_at: Some(self.first_listing(now)),
            ..row.clone()
        }
    }

    /// After its recordings were listed: `waiting` when a screen recording was not
    /// listed as ready or final (`UPLOADING`, `RESTORING`).
    pub fn after_listing(&self, row: &ConversationRow, waiting: bool, now: DateTime<Utc>) -> ConversationRow {
        let end = row.end.unwrap_or(now);
        let settles_at = end + chrono(self.settle_after_end);
        if !waiting && now >= settles_at {
            return ConversationRow {
                state: ConversationState::Settled,
                next_check_at: None,
                ..row.clone()
            };
        }
        let checks = row.checks.saturating_add(1);
        let next = now + chrono(self.interval(checks - 1));
        ConversationRow {
            state: ConversationState::Ended,
            checks,
            next_check_at: Some(if waiting { next } else { next.max(settles_at) }),
            ..row.clone()
        }
    }
}

/// A factor in [0.8, 1.0], fixed for one conversation and look (FNV-1a of both).
fn spread(conversation_id: &str, checks: u32) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in conversation_id.bytes().chain(checks.to_le_bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    0.8 + 0.2 * (hash % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Lifecycle {
        Lifecycle {
            poll_interval: Duration::from_secs(60),
            settle_after_end: Duration::from_secs(300),
            recheck_max: Duration::from_secs(600),
        }
    }

    fn summary(end: Option<DateTime<Utc>>) -> ConversationSummary {
        ConversationSummary {
            conversation_id: "c".into(),
            conversation_start: "2026-11-24T10:00:00Z".parse().unwrap(),
            conversation_end: end,
        }
    }

    #[test]
    fn intervals_double_from_the_poll_interval_up_to_the_cap() {
        let p = policy();
        let secs: Vec<u64> = (0..6).map(|n| p.interval(n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 600, 600]);
        assert_eq!(p.interval(u32::MAX).as_secs(), 600);
    }

    #[test]
    fn an_active_conversation_is_listed_only_after_its_end_has_settled() {
        let p = policy();
        let now: DateTime<Utc> = "2026-11-24T10:40:00Z".parse().unwrap();
        let active = p.discovered(&summary(None), now);
        assert_eq!(active.state, ConversationState::Active);
        assert_eq!(active.next_check_at, Some(now + chrono::Duration::seconds(60)));
        let later = now + chrono::Duration::seconds(60);
        let again = p.seen_again(&active, &summary(None), later).unwrap();
        assert_eq!((again.state, again.checks), (ConversationState::Active, 1));
        let wait = again.next_check_at.unwrap() - later;
        assert!(
            (96..=120).contains(&wait.num_seconds()),
            "the doubled interval, spread by up to a fifth: {wait}"
        );
        let end: DateTime<Utc> = "2026-11-24T10:41:30Z".parse().unwrap();
        let ended = p.seen_again(&again, &summary(Some(end)), later).unwrap();
        assert_eq!(ended.state, ConversationState::Ended);
        assert_eq!(ended.next_check_at, Some(end + chrono::Duration::seconds(300)));
        assert!(
            p.seen_again(&ended, &summary(Some(end)), later).is_none(),
            "ended rows are not re-read"
        );
    }

    #[test]
    fn the_spread_is_fixed_per_look_and_within_a_fifth() {
        let factors: Vec<f64> = (0..200).map(|i| spread(&format!("c{i}"), 1)).collect();
        assert!(factors.iter().all(|f| (0.8..=1.0).contains(f)));
        assert!(
            factors.iter().any(|f| *f < 0.85) && factors.iter().any(|f| *f > 0.95),
            "spread out"
        );
        assert_eq!(spread("c1", 3), spread("c1", 3));
    }

    #[test]
    fn listing_settles_only_after_the_delay_and_with_nothing_uploading() {
        let p = policy();
        let end: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let row = p.discovered(&summary(Some(end)), end);
        let at = end + chrono::Duration::seconds(300);
        let uploading = p.after_listing(&row, true, at);
        assert_eq!(uploading.state, ConversationState::Ended);
        assert_eq!(uploading.next_check_at, Some(at + chrono::Duration::seconds(60)));
        let later = at + chrono::Duration::seconds(60);
        let next = p.after_listing(&uploading, true, later);
        assert_eq!(
            next.next_check_at,
            Some(later + chrono::Duration::seconds(120)),
            "grows"
        );
        assert_eq!(p.after_listing(&next, false, later).state, ConversationState::Settled);
        // Listed early (a retry, or an operator's `retry`): not settled before the delay.
        let early = p.after_listing(&row, false, end + chrono::Duration::seconds(10));
        assert_eq!(early.state, ConversationState::Ended);
        assert_eq!(early.next_check_at, Some(at));
    }
}
