//! How often one network address may try to sign in. Staff accounts lock
//! after five failures in a row (`provisio_engine::staff`), which stops
//! guessing one account's password; this stops one address trying a few
//! passwords against every account (spraying), before any hash is computed.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// Attempts one address may make at once.
const BURST: u32 = 10;
/// How often an address earns one more attempt (120 an hour).
const REFILL: Duration = Duration::from_secs(30);
/// Addresses kept before the ones with a full allowance are forgotten.
const KEEP: usize = 10_000;

/// Sign-in attempts per address, in memory (per process).
#[derive(Debug)]
pub struct SignInLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Default for SignInLimit {
    fn default() -> Self {
        let quota = Quota::with_period(REFILL).expect("non-zero period").allow_burst(NonZeroU32::new(BURST).unwrap());
        SignInLimit { limiter: DefaultKeyedRateLimiter::keyed(quota), clock: DefaultClock::default() }
    }
}

impl SignInLimit {
    /// Counts one attempt from `address`; `Err` says how long to wait.
    pub fn attempt(&self, address: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() >= KEEP {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key(address)).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// The address an attempt is counted against: an IPv6 client controls its
/// whole /64, so that is one address here.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_waits_and_others_are_untouched() {
        let limit = SignInLimit::default();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..BURST {
            limit.attempt(one).unwrap();
        }
        let wait = limit.attempt(one).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        limit.attempt("192.0.2.2".parse().unwrap()).unwrap();
    }

    #[test]
    fn one_ipv6_prefix_is_one_address() {
        let limit = SignInLimit::default();
        for n in 0..BURST {
            limit.attempt(format!("2001:db8::{n:x}").parse().unwrap()).unwrap();
        }
        assert!(limit.attempt("2001:db8::ffff:1".parse().unwrap()).is_err());
        limit.attempt("2001:db8:0:1::1".parse().unwrap()).unwrap();
        assert_eq!(key("::ffff:192.0.2.9".parse().unwrap()), "192.0.2.9".parse::<IpAddr>().unwrap());
    }
}
