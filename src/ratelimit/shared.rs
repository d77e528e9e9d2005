//! The budget shared by several replicas, kept in Redis (`[limits] shared`).
//!
//! N replicas that each pace themselves at the org's budget send N times it: the
//! seed's 429 storm one level up. Here every replica spends from one count per scope
//! (the per-token budget, each endpoint's), kept in Redis and keyed by org and OAuth
//! client:
//! - **Pacing** is GCRA (the generic cell rate algorithm: one "theoretical arrival time"
//!   per scope) in one Lua script, on the Redis server's clock: a request is let
//!   through only when every scope it counts against has room, atomically, so replicas'
//!   clocks never disagree about it. Burst of one, at `target_utilization` of the limit,
//!   as the local budget paces.
//! - **Cooldowns**: a 429 sets the refusing scope's cooldown key (Retry-After, the
//!   window's reset, or full-jitter backoff on a shared refusal streak); the script
//!   makes every replica wait it out. A spent window reported by the headers does the
//!   same.
//! - **Learned limits**: `inin-ratelimit-allowed` (the header cap, written again every
//!   third of its life) and the count a credible refusal proved (the taught cap) are two
//!   keys, so neither overwrites the other; the script paces every replica by the
//!   smaller. A taught cap lapses after a few clean windows, in case someone else had
//!   spent the window.
//! - **Keys** carry one hash tag per budget (`{org:client}`), so under Redis Cluster a
//!   script's keys share a slot. Redis 5.0 or later (effects replication of scripts
//!   that call `TIME`).
//!
//! If Redis cannot be reached, this replica paces on a local budget of `1/replicas` of
//! the org's limits (it has learned from every answer all along), says so in a log line
//! and `budget_shared_up 0`, and asks Redis again every few seconds.
//!
//! Over 500 lines: the budget in Redis is one protocol: the GCRA script, the shared
//! cooldowns and the fall back to the local share while Redis is away must be read
//! together.

use super::local::LocalBudget;
use super::refusal::{self, Refusal, Spent};
use super::scope::CooldownCause;
use super::settings::LimitSettings;
use super::{Budget, BudgetStats, Endpoint, Feedback, Outcome};
use crate::metrics::OrgMetrics;
use crate::retry::settings::RetrySettings;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Lets a request through when every scope named has room; else answers how many
/// microseconds to wait. KEYS: per scope its arrival time, cooldown, header cap, taught
/// cap and window-count keys. ARGV: per scope the configured limit (0: none), then the
/// window in microseconds and the target utilization. The pace takes the smallest of
/// the configured limit and the two caps.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[#ARGV - 1])
local utilization = tonumber(ARGV[#ARGV])
local scopes = #KEYS / 5
local wait = 0
local intervals = {}
for i = 1, scopes do
  local base = 5 * (i - 1)
  local limit = tonumber(ARGV[i])
  for k = 3, 4 do
    local cap = tonumber(redis.call('GET', KEYS[base + k]) or '0')
    if cap > 0 and (limit == 0 or cap < limit) then limit = cap end
  end
  local interval = 0
  if limit > 0 then interval = math.ceil(window / (limit * utilization)) end
  intervals[i] = interval
  local cooldown = redis.call('PTTL', KEYS[base + 2])
  if cooldown > 0 then wait = math.max(wait, cooldown * 1000) end
  if interval > 0 then
    local tat = tonumber(redis.call('GET', KEYS[base + 1]) or '0')
    if tat > now then wait = math.max(wait, tat - now) end
  end
end
if wait > 0 then return wait end
for i = 1, scopes do
  local base = 5 * (i - 1)
  if intervals[i] > 0 then
    local tat = math.max(tonumber(redis.call('GET', KEYS[base + 1]) or '0'), now) + intervals[i]
    redis.call('SET', KEYS[base + 1], tat, 'PX', math.ceil((tat - now) / 1000) + 1000)
  end
  if redis.call('INCR', KEYS[base + 5]) == 1 then
    redis.call('PEXPIRE', KEYS[base + 5], math.ceil(window / 1000))
  end
end
return 0
";

/// A 429 of one scope. KEYS: cooldown, header cap, taught cap, window count, refusal
/// streak. ARGV: the platform's wait in ms (-1: none said), the backoff base and cap in
/// ms, a random fraction for full jitter, the window in ms, the fewest accepted
/// requests from which a refusal teaches a cap, how long a taught cap lasts in ms, and
/// the scope's configured limit (0: none). Returns the cooldown set in ms and 1 if it
/// started a cooldown (0 if one was running).
///
/// The credibility rule is the local budget's: a refusal teaches a cap only when the
/// window's count is at least a tenth of the ceiling (configured limit or header cap)
/// and at least the fewest; fewer means someone else spent the window, and the
/// cooldown alone is the answer. The taught cap is kept apart from the header cap (the
/// pace takes the smaller), lowered only, and lives on while refusals come.
const REFUSE: &str = r"
local streak = redis.call('INCR', KEYS[5])
redis.call('PEXPIRE', KEYS[5], tonumber(ARGV[5]) * 2)
local wait = tonumber(ARGV[1])
if wait < 0 then
  local backoff = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ math.min(streak - 1, 30))
  wait = math.floor(tonumber(ARGV[4]) * backoff)
end
local ceiling = tonumber(ARGV[8])
local header = tonumber(redis.call('GET', KEYS[2]) or '0')
if header > 0 and (ceiling == 0 or header < ceiling) then ceiling = header end
local proven = tonumber(redis.call('GET', KEYS[4]) or '0')
local taught = tonumber(redis.call('GET', KEYS[3]) or '0')
if proven >= math.max(math.floor(ceiling / 10), tonumber(ARGV[6])) and (ceiling == 0 or proven < ceiling)
    and (taught == 0 or proven < taught) then
  redis.call('SET', KEYS[3], proven, 'PX', tonumber(ARGV[7]))
elseif taught > 0 then
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[7]))
end
local running = redis.call('PTTL', KEYS[1])
if wait > 0 and wait > running then
  redis.call('SET', KEYS[1], 1, 'PX', wait)
end
if running > 0 then return {wait, 0} end
return {wait, 1}
";

/// Fewest accepted requests in a window from which a refusal teaches a limit (as the
/// local budget).
const MIN_PROVEN: u32 = 10;
/// A cap taught by a refusal lasts this many windows after the last refusal.
const TAUGHT_CAP_WINDOWS: u32 = 5;
/// A header cap lasts this many windows unless written again (it is, every third of it,
/// while answers carry it).
const HEADER_CAP_WINDOWS: u32 = 60;
/// How long a replica paces on its local share before it asks Redis again.
const RECHECK: Duration = Duration::from_secs(5);
/// Longest wait for Redis to connect or to answer one call: past it, the local share
/// is used.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// [`Inner::reachable`]: not asked yet, answered, failed.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// One scope's keys.
struct Keys {
    /// `token-budget` or `endpoint:NAME`, as the local budget names its scopes.
    name: String,
    arrival: String,
    cooldown: String,
    /// The cap `inin-ratelimit-allowed` reported (token scope only), republished
    /// before it expires.
    header_cap: String,
    /// The cap a credible refusal proved.
    taught_cap: String,
    count: String,
    streak: String,
}

impl Keys {
    fn new(prefix: &str, scope: &str, name: String) -> Self {
        let key = |what: &str| format!("{prefix}:{scope}:{what}");
        Self {
            name,
            arrival: key("tat"),
            cooldown: key("cooldown"),
            header_cap: key("cap:header"),
            taught_cap: key("cap:taught"),
            count: key("count"),
            streak: key("streak"),
        }
    }
}

/// Cheap to share: the state lives behind one `Arc`, so what `observe` writes to Redis
/// can go on after it returns.
pub struct SharedBudget {
    inner: Arc<Inner>,
}

struct Inner {
    redis: ConnectionManager,
    acquire_script: redis::Script,
    refuse_script: redis::Script,
    token: Keys,
    /// Indexed like [`Endpoint::ALL`].
    endpoints: [Keys; Endpoint::COUNT],
    /// The per-token limit (configured, or read at start with `"auto"`).
    token_limit: AtomicU32,
    endpoint_limits: [Option<u32>; Endpoint::COUNT],
    window: Duration,
    utilization: f64,
    fallback_timing: RetrySettings,
    /// Replicas expected to share the budget (the local share's divisor).
    replicas: u32,
    /// Paces this replica while Redis is away; learns from every answer all along.
    local: LocalBudget,
    /// Until when the local share is used without asking Redis.
    local_until: Mutex<Option<Instant>>,
    /// Whether Redis answered the last call ([`UNKNOWN`] until it was first asked): the
    /// log line and the gauge change with it.
    reachable: AtomicU8,
    /// The per-token `allowed` last written as the token scope's header cap, and when:
    /// written on change, and again before it expires.
    published_cap: Mutex<Option<(u32, Instant)>>,
    /// Taken before Redis is asked, one per endpoint: this replica's callers of an
    /// endpoint ask in arrival order, one at a time, instead of all waking at the same
    /// arrival time and racing (a herd of script calls per grant). Endpoints do not
    /// wait for each other: a cooldown of one is not another's.
    gates: [tokio::sync::Mutex<()>; Endpoint::COUNT],
    /// A refusal streak runs in Redis: the next accepted answer ends it.
    streak_open: AtomicBool,
    metrics: OrgMetrics,
    rng: Mutex<fastrand::Rng>,
}

impl SharedBudget {
    /// Connects to Redis (failing at once on a bad URL, not on an unreachable server:
    /// the replica then starts on its local share). `key` names the budget: the org and
    /// its OAuth client, as the platform counts.
    pub async fn new(
        limits: &LimitSettings,
        retry: &RetrySettings,
        key: &str,
        metrics: OrgMetrics,
    ) -> Result<Self, redis::RedisError> {
        use secrecy::ExposeSecret;
        let shared = limits
            .shared
            .as_ref()
            .expect("a shared budget is built from settings that name Redis");
        let client = redis::Client::open(shared.url.expose_secret())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let redis = ConnectionManager::new_lazy_with_config(client, config)?;
        // `{…}` is a Redis Cluster hash tag: every key of one budget lands in one slot,
        // as the scripts (which touch several scopes at once) require there.
        let prefix = format!("genesys-archiver:budget:{{{key}}}");
        let local = LocalBudget::new(&share(limits, shared.replicas), retry, metrics.clone());
        let inner = Inner {
            redis,
            acquire_script: redis::Script::new(ACQUIRE),
            refuse_script: redis::Script::new(REFUSE),
            token: Keys::new(&prefix, "token", "token-budget".into()),
            endpoints: Endpoint::ALL.map(|e| Keys::new(&prefix, &format!("endpoint:{e}"), format!("endpoint:{e}"))),
            token_limit: AtomicU32::new(limits.token_budget),
            endpoint_limits: Endpoint::ALL.map(|e| limits.endpoint_budget(e)),
            window: limits.window,
            utilization: limits.target_utilization,
            fallback_timing: retry.clone(),
            local,
            local_until: Mutex::new(None),
            reachable: AtomicU8::new(UNKNOWN),
            published_cap: Mutex::new(None),
            gates: Endpoint::ALL.map(|_| tokio::sync::Mutex::new(())),
            streak_open: AtomicBool::new(false),
            metrics,
            rng: Mutex::new(fastrand::Rng::new()),
            replicas: shared.replicas,
        };
        Ok(Self { inner: Arc::new(inner) })
    }
}

impl Inner {
    /// The scopes a request to `endpoint` counts against, with their limits (0: none).
    fn scopes_of(&self, endpoint: Endpoint) -> Vec<(&Keys, u32)> {
        let i = endpoint.index();
        let mut scopes = vec![(&self.endpoints[i], self.endpoint_limits[i].unwrap_or(0))];
        if endpoint.uses_token_budget() {
            scopes.push((&self.token, self.token_limit.load(Ordering::Relaxed)));
        }
        scopes
    }

    /// Whether the local share paces now (Redis failed less than [`RECHECK`] ago).
    fn on_local_share(&self) -> bool {
        self.local_until
            .lock()
            .unwrap()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Redis failed: the local share paces for a while; said once per outage.
    fn unreachable(&self, error: &redis::RedisError) {
        *self.local_until.lock().unwrap() = Some(Instant::now() + RECHECK);
        if self.reachable.swap(DOWN, Ordering::Relaxed) != DOWN {
            self.metrics.shared_budget_down();
            tracing::warn!(
                message = "Shared budget unreachable; this replica paces on its local share until Redis answers.",
                error = %error,
            );
        }
    }

    fn reached(&self) {
        match self.reachable.swap(UP, Ordering::Relaxed) {
            UP => {}
            DOWN => {
                self.metrics.shared_budget_up();
                tracing::info!(message = "Shared budget reachable again; pacing with the other replicas.");
            }
            _ => self.metrics.shared_budget_up(),
        }
    }

    /// One try of the acquire script: `Some(wait)` (zero: granted) or `None` if Redis
    /// did not answer.
    async fn try_acquire(&self, endpoint: Endpoint) -> Option<Duration> {
        let scopes = self.scopes_of(endpoint);
        let mut invocation = self.acquire_script.prepare_invoke();
        for (keys, _) in &scopes {
            invocation
                .key(&keys.arrival)
                .key(&keys.cooldown)
                .key(&keys.header_cap)
                .key(&keys.taught_cap)
                .key(&keys.count);
        }
        for (_, limit) in &scopes {
            invocation.arg(*limit);
        }
        invocation.arg(self.window.as_micros() as u64).arg(self.utilization);
        // The connection manager bounds the connect and the answer (REDIS_TIMEOUT).
        let mut redis = self.redis.clone();
        match invocation.invoke_async::<u64>(&mut redis).await {
            Ok(micros) => {
                self.reached();
                Some(Duration::from_micros(micros))
            }
            Err(error) => {
                self.unreachable(&error);
                None
            }
        }
    }

    /// Publishes a 429 of `endpoint`: the refusing scope's cooldown and what it proved.
    async fn refuse(&self, endpoint: Endpoint, refusal: Refusal) {
        let (keys, configured) = match refusal.spent {
            Spent::Endpoint => (
                &self.endpoints[endpoint.index()],
                self.endpoint_limits[endpoint.index()].unwrap_or(0),
            ),
            // The header cap lives on the token scope's keys.
            Spent::Token => (&self.token, self.token_limit.load(Ordering::Relaxed)),
        };
        let fraction = self.rng.lock().unwrap().f64();
        let window_ms = self.window.as_millis() as u64;
        let mut redis = self.redis.clone();
        let result = self
            .refuse_script
            .key(&keys.cooldown)
            .key(&self.token.header_cap)
            .key(&keys.taught_cap)
            .key(&keys.count)
            .key(&keys.streak)
            .arg(refusal.hint.map_or(-1, |(d, _)| d.as_millis() as i64))
            .arg(self.fallback_timing.base.as_millis() as u64)
            .arg(self.fallback_timing.cap.as_millis() as u64)
            .arg(fraction)
            .arg(window_ms)
            .arg(MIN_PROVEN)
            .arg(window_ms * u64::from(TAUGHT_CAP_WINDOWS))
            .arg(configured)
            .invoke_async::<(u64, u8)>(&mut redis)
            .await;
        // The local budget counts and logs this replica's own refusal; this line says
        // that the pause now holds for every replica.
        match result {
            Ok((cooldown_ms, 1)) => {
                tracing::info!(
                    message = "Shared cooldown started; every replica pauses this scope until it ends.",
                    scope = %keys.name,
                    cooldown_ms,
                    cause = refusal.hint.map_or(CooldownCause::Backoff, |(_, cause)| cause).as_str(),
                );
            }
            Ok(_) => {}
            Err(error) => self.unreachable(&error),
        }
    }

    /// Whether `allowed` must be written: it differs from the cap last written, or
    /// that write is a third of its life old (so the key never lapses while answers
    /// carry it). Takes it as written.
    fn cap_due(&self, allowed: u32) -> bool {
        let mut published = self.published_cap.lock().unwrap();
        let now = Instant::now();
        let due = published.is_none_or(|(cap, at)| cap != allowed || now - at >= self.cap_life() / 3);
        if due {
            *published = Some((allowed, now));
        }
        due
    }

    /// How long a published header cap lasts without being written again.
    fn cap_life(&self) -> Duration {
        self.window * HEADER_CAP_WINDOWS
    }

    /// Writes the per-token limit the headers reported as the token scope's header cap.
    async fn publish_cap(&self, allowed: u32) {
        let mut redis = self.redis.clone();
        let set: Result<(), _> = redis::cmd("SET")
            .arg(&self.token.header_cap)
            .arg(allowed)
            .arg("PX")
            .arg(self.cap_life().as_millis() as u64)
            .query_async(&mut redis)
            .await;
        if let Err(error) = set {
            // Written again with the next answer that carries it.
            *self.published_cap.lock().unwrap() = None;
            self.unreachable(&error);
        }
    }

    /// The headers say the per-token window is spent: every replica pauses until it
    /// resets (a pause already running is left as it is).
    async fn pause_token(&self, reset: Duration) {
        let mut redis = self.redis.clone();
        let pause: Result<Option<String>, _> = redis::cmd("SET")
            .arg(&self.token.cooldown)
            .arg(1)
            .arg("PX")
            .arg(reset.as_millis() as u64)
            .arg("NX")
            .query_async(&mut redis)
            .await;
        match pause {
            Ok(Some(_)) => BudgetStats::bump(&self.local.stats().header_pauses, 1),
            Ok(None) => {}
            Err(error) => self.unreachable(&error),
        }
    }

    /// An answer was accepted after refusals: the backoff streak starts over.
    async fn end_streak(&self) {
        let mut redis = self.redis.clone();
        let deleted: Result<u32, _> = redis::cmd("DEL")
            .arg(&self.token.streak)
            .arg(self.endpoints.iter().map(|k| k.streak.as_str()).collect::<Vec<_>>())
            .query_async(&mut redis)
            .await;
        if let Err(error) = deleted {
            self.unreachable(&error);
        }
    }
}

/// One replica's part of a limit of `n` shared by `replicas` (at least one request).
fn part(n: u32, replicas: u32) -> u32 {
    (n / replicas.max(1)).max(1)
}

/// The org's limits divided among `replicas`: what one replica may spend alone.
fn share(limits: &LimitSettings, replicas: u32) -> LimitSettings {
    let mut own = limits.clone();
    own.token_budget = part(limits.token_budget, replicas);
    for (_, budget) in own.endpoint_budgets.iter_mut() {
        *budget = budget.map(|n| part(n, replicas));
    }
    own.shared = None;
    own
}

impl Budget for SharedBudget {
    fn acquire(&self, endpoint: Endpoint) -> BoxFuture<'_, Duration> {
        Box::pin(async move {
            let inner = &self.inner;
            let start = Instant::now();
            let _turn = crate::progress::waiting(inner.gates[endpoint.index()].lock()).await;
            loop {
                if inner.on_local_share() {
                    // The local budget counts this grant and its wait itself.
                    let waited = inner.local.acquire(endpoint).await;
                    return start.elapsed().max(waited);
                }
                match inner.try_acquire(endpoint).await {
                    Some(wait) if wait.is_zero() => break,
                    // Waiting for the budget is progress (every wait has an end).
                    Some(wait) => crate::progress::waiting(tokio::time::sleep(wait)).await,
                    None => continue,
                }
            }
            let waited = start.elapsed();
            let stats = inner.local.stats();
            BudgetStats::bump(&stats.acquired, 1);
            BudgetStats::bump(&stats.wait_micros, waited.as_micros() as u64);
            waited
        })
    }

    fn observe(&self, endpoint: Endpoint, feedback: &Feedback) {
        let inner = &self.inner;
        // The local share learns from every answer, so it is current when it paces.
        inner.local.observe(endpoint, feedback);
        let token_headers = feedback.headers.filter(|_| endpoint.uses_token_budget());
        let accepted = feedback.outcome == Outcome::Accepted;
        // What Redis must learn, decided here: most answers teach it nothing, and only
        // those that do cost a task and a write.
        let refusal = match &feedback.outcome {
            Outcome::Refused { retry_after } => {
                inner.streak_open.store(true, Ordering::Relaxed);
                Some(refusal::classify(endpoint, token_headers, *retry_after))
            }
            _ => None,
        };
        let ends_streak = accepted && inner.streak_open.swap(false, Ordering::Relaxed);
        let cap = token_headers
            .map(|h| h.allowed)
            .filter(|allowed| *allowed > 0 && inner.cap_due(*allowed));
        let pause = token_headers
            .filter(|h| accepted && h.exhausted() && !h.reset.is_zero())
            .map(|h| h.reset);
        if refusal.is_none() && !ends_streak && cap.is_none() && pause.is_none() {
            return;
        }
        // `observe` is synchronous (the client calls it as an answer arrives): the writes
        // go on behind it. A write that fails turns this replica to its local share.
        let inner = self.inner.clone();
        tokio::spawn(async move {
            if let Some(refusal) = refusal {
                inner.refuse(endpoint, refusal).await;
            }
            if ends_streak {
                inner.end_streak().await;
            }
            if let Some(allowed) = cap {
                inner.publish_cap(allowed).await;
            }
            if let Some(reset) = pause {
                inner.pause_token(reset).await;
            }
        });
    }

    fn stats(&self) -> &BudgetStats {
        self.inner.local.stats()
    }

    fn set_token_limit(&self, limit: u32) {
        let inner = &self.inner;
        inner.token_limit.store(limit, Ordering::Relaxed);
        inner.local.set_token_limit(part(limit, inner.replicas));
    }

    /// A PING. Its answer also moves the replica to its local share (or says Redis is
    /// back) as a budget call's would: a replica at rest notices an outage too.
    fn shared_reachable(&self) -> BoxFuture<'_, Option<Result<(), String>>> {
        Box::pin(async move {
            let inner = &self.inner;
            let answer: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut inner.redis.clone()).await;
            Some(match answer {
                Ok(_) => {
                    inner.reached();
                    Ok(())
                }
                Err(error) => {
                    inner.unreachable(&error);
                    Err(format!("shared budget (Redis): {error}"))
                }
            })
        })
    }
}
