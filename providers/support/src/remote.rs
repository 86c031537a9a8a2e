//! What every provider that talks to a remote server shares: how long a
//! call may take, and how a Ctrl-C reaches a call in flight.
//!
//! A provider block may set `connect_timeout` (how long to wait for a
//! connection), `request_timeout` (how long to wait for an answer to one
//! request) and `max_attempts` (how often a call that failed transiently
//! is tried, with backoff). A server that stops answering (frozen, or a
//! network gone quiet) then ends in one clear error after about
//! `max_attempts × request_timeout`, never in a hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use mlops_provider_api::{Configuration, ProviderError, Value};

/// The time limits of remote calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RemoteLimits {
    pub connect: Duration,
    pub request: Duration,
    pub attempts: u32,
}

impl Default for RemoteLimits {
    fn default() -> Self {
        RemoteLimits { connect: Duration::from_secs(10), request: Duration::from_secs(60), attempts: 3 }
    }
}

impl RemoteLimits {
    /// From a provider block (or a backend block): the settings it has,
    /// the defaults for the rest.
    pub fn from_config(config: &Configuration) -> RemoteLimits {
        let defaults = RemoteLimits::default();
        let duration = |name: &str| config.get(name).and_then(Value::as_duration);
        RemoteLimits {
            connect: duration("connect_timeout").unwrap_or(defaults.connect),
            request: duration("request_timeout").unwrap_or(defaults.request),
            attempts: config.get("max_attempts").and_then(Value::as_u64).map_or(defaults.attempts, |attempts| attempts.clamp(1, 10) as u32),
        }
    }

    /// The longest one call may take, attempts and backoff included.
    pub fn budget(&self) -> Duration {
        (self.connect + self.request) * self.attempts + Duration::from_secs(2) * self.attempts.saturating_sub(1)
    }

    /// "within 60s", for messages.
    pub fn describe_request(&self) -> String {
        format!("{}s (request_timeout)", self.request.as_secs_f64())
    }
}

static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes `flag` (set by the command line on Ctrl-C) visible to every call
/// in flight.
pub fn install_interrupt(flag: Arc<AtomicBool>) {
    let _ = INTERRUPT.set(flag);
}

/// Whether the user asked to stop.
pub fn interrupt_requested() -> bool {
    INTERRUPT.get().is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// Runs blocking `work` (an HTTP call) on a thread of its own and waits for
/// it, returning [`ProviderError::Interrupted`] at once when the user asks to
/// stop: a call to a server that does not answer is abandoned, not waited
/// out. (The abandoned thread ends with its own timeout, or with the process.)
pub fn interruptible<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ProviderError> {
    if interrupt_requested() {
        return Err(ProviderError::Interrupted);
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mlops-call".to_owned())
        .spawn(move || {
            let _ = sender.send(work());
        })
        .map_err(|error| ProviderError::failed(format!("cannot start a thread for a remote call: {error}")))?;
    loop {
        match receiver.recv_timeout(Duration::from_millis(100)) {
            Ok(result) => return Ok(result),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if interrupt_requested() => return Err(ProviderError::Interrupted),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ProviderError::failed("a remote call stopped without an answer"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_block_with_defaults() {
        let config = Configuration::from([
            ("request_timeout".to_owned(), Value::duration_from_text("1m30s").unwrap()),
            ("max_attempts".to_owned(), Value::Number(99.into())),
        ]);
        let limits = RemoteLimits::from_config(&config);
        assert_eq!(limits, RemoteLimits { connect: Duration::from_secs(10), request: Duration::from_secs(90), attempts: 10 });
        assert_eq!(RemoteLimits::from_config(&Configuration::new()), RemoteLimits::default());
    }
}
