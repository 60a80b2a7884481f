//! `upstream.rate_limit`: one limiter shared by every operation of a connector process, so
//! that a provider's documented rate is never exceeded, and paused by the provider's
//! `Retry-After`.
//!
//! It is the generic cell rate algorithm (a token bucket of `burst` tokens refilled at
//! `requests / per`), by reservation: each call takes the next slot in order and sleeps
//! until it, so waiting calls go in the order they came, without polling. A pause (a 429 or
//! 503 with `Retry-After`) moves every slot after its end, including those already taken.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::config::RateLimit;

/// The provider's rate, for every call of this process.
#[derive(Debug)]
pub struct Limiter {
    /// Time between two calls at the sustained rate (`per / requests`).
    interval: Duration,
    /// How far ahead of the sustained rate a burst may run (`(burst - 1) * interval`).
    tolerance: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The theoretical arrival time of the next call at the sustained rate.
    next: Instant,
    /// No call starts before this (the provider's `Retry-After`).
    paused_until: Instant,
}

impl Limiter {
    pub fn new(limit: RateLimit) -> Self {
        let requests = limit.requests.max(1);
        let interval = limit.per / requests;
        let now = Instant::now();
        Self {
            interval,
            tolerance: interval * limit.burst.max(1).saturating_sub(1),
            state: Mutex::new(State {
                next: now,
                paused_until: now,
            }),
        }
    }

    /// Takes the next slot: when this call may start.
    fn reserve(&self) -> Instant {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let earliest = state
            .next
            .checked_sub(self.tolerance)
            .unwrap_or(now)
            .max(now)
            .max(state.paused_until);
        state.next = state.next.max(earliest) + self.interval;
        earliest
    }

    fn paused_until(&self) -> Instant {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .paused_until
    }

    /// Waits for this call's turn; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let started = Instant::now();
        loop {
            let at = self.reserve();
            tokio::time::sleep_until(at.into()).await;
            // A pause that began while this call slept moves it after the pause.
            if self.paused_until() <= Instant::now() {
                return started.elapsed();
            }
        }
    }

    /// The provider asked to wait `wait` (`Retry-After`): no call starts before then.
    pub fn pause(&self, wait: Duration) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let until = Instant::now() + wait;
        if until > state.paused_until {
            state.paused_until = until;
            tracing::info!(
                wait_ms = wait.as_millis() as u64,
                "the provider asked to wait (Retry-After): every operation's calls are held until then"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::block_on;
    use super::*;

    fn limiter(requests: u32, per_ms: u64, burst: u32) -> std::sync::Arc<Limiter> {
        std::sync::Arc::new(Limiter::new(RateLimit {
            requests,
            per: Duration::from_millis(per_ms),
            burst,
        }))
    }

    /// Start times of `n` calls made at once from as many tasks, from the first call.
    fn starts(limiter: &std::sync::Arc<Limiter>, n: usize) -> Vec<Duration> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let origin = Instant::now();
        let mut times: Vec<Duration> = runtime.block_on(async {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    let limiter = std::sync::Arc::clone(limiter);
                    tokio::spawn(async move {
                        limiter.acquire().await;
                        origin.elapsed()
                    })
                })
                .collect();
            let mut times = Vec::new();
            for task in tasks {
                times.push(task.await.unwrap());
            }
            times
        });
        times.sort();
        times
    }

    #[test]
    fn a_burst_goes_at_once_then_calls_follow_the_sustained_rate() {
        // 20 per second (one each 50 ms), bursts of 3.
        let times = starts(&limiter(20, 1000, 3), 9);
        assert!(times[2] < Duration::from_millis(30), "{times:?}");
        for (i, time) in times.iter().enumerate().skip(3) {
            let due = Duration::from_millis(50 * (i as u64 - 2));
            assert!(
                *time + Duration::from_millis(2) >= due,
                "call {i} at {time:?}: {times:?}"
            );
            assert!(
                *time < due + Duration::from_millis(60),
                "call {i} at {time:?}: {times:?}"
            );
        }
    }

    #[test]
    fn no_window_holds_more_than_burst_plus_the_rate() {
        // 10 per 200 ms, bursts of 2: any 200 ms holds at most 2 + 10 calls.
        let times = starts(&limiter(10, 200, 2), 40);
        for (i, start) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .filter(|t| **t < *start + Duration::from_millis(200))
                .count();
            assert!(
                within <= 12,
                "{within} calls within 200 ms of {start:?}: {times:?}"
            );
        }
    }

    #[test]
    fn retry_after_pauses_every_caller_even_those_already_waiting() {
        let limiter = limiter(1000, 1000, 1);
        block_on(async {
            limiter.acquire().await;
            let started = Instant::now();
            limiter.pause(Duration::from_millis(300));
            let waited = limiter.acquire().await;
            assert!(waited >= Duration::from_millis(290), "{waited:?}");
            assert!(started.elapsed() < Duration::from_millis(600));
            // A shorter pause does not shorten a longer one.
            limiter.pause(Duration::from_millis(200));
            limiter.pause(Duration::from_millis(10));
            let waited = limiter.acquire().await;
            assert!(waited >= Duration::from_millis(190), "{waited:?}");
        });
    }
}
