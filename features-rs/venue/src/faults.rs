//! Faults on demand, for testing clients' recovery.
//!
//! | fault | effect on a websocket connection |
//! |---|---|
//! | `drop_after N` | after N messages, the TCP connection is reset (no close frame) |
//! | `stall_ms T`, `stall_after N` | after N messages, nothing is sent for T ms; the socket stays open |
//! | `malformed_every N` | after every N messages, one extra text frame that is not valid JSON |
//! | `skip_depth K` | the K-th diff-depth update the connection would get is never sent (a `U`/`pu` gap) |
//!
//! Message counts are per connection and count only captured messages. `drop_after`,
//! `stall_*` and `skip_depth` are one-shot: the next websocket connection to open takes them
//! (so a reconnecting client recovers), unless `every_connection` is set. `malformed_every`
//! applies to every connection. `POST /_venue/fault?...` replaces and re-arms the whole set.

use std::sync::Mutex;

/// One fault configuration (also the plan a connection takes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    pub drop_after: Option<u64>,
    pub stall_after: Option<u64>,
    pub stall_ms: Option<u64>,
    pub malformed_every: Option<u64>,
    pub skip_depth: Option<u64>,
    pub every_connection: bool,
}

impl Faults {
    /// Parses `name=value` pairs (query string of the control endpoint).
    pub fn from_params<'a>(
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut faults = Faults::default();
        for (name, value) in params {
            let number = || -> Result<Option<u64>, String> {
                if value.is_empty() || value == "none" {
                    return Ok(None);
                }
                value
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| format!("{name}: expected a non-negative integer, got {value:?}"))
            };
            match name {
                "drop_after" => faults.drop_after = number()?,
                "stall_after" => faults.stall_after = number()?,
                "stall_ms" => faults.stall_ms = number()?,
                "malformed_every" => faults.malformed_every = number()?.filter(|&n| n > 0),
                "skip_depth" => faults.skip_depth = number()?.filter(|&n| n > 0),
                "every_connection" => faults.every_connection = matches!(value, "1" | "true" | ""),
                "clear" => {}
                other => return Err(format!("unknown fault {other:?}")),
            }
        }
        Ok(faults.normalized())
    }

    /// A stall needs a duration; its count defaults to 0 (stall before the first message).
    pub fn normalized(mut self) -> Self {
        if self.stall_ms.is_none() {
            self.stall_after = None;
        } else if self.stall_after.is_none() {
            self.stall_after = Some(0);
        }
        self
    }

    pub fn to_json(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        format!(
            "{{\"drop_after\":{},\"stall_after\":{},\"stall_ms\":{},\"malformed_every\":{},\"skip_depth\":{},\"every_connection\":{}}}",
            opt(self.drop_after),
            opt(self.stall_after),
            opt(self.stall_ms),
            opt(self.malformed_every),
            opt(self.skip_depth),
            self.every_connection
        )
    }
}

/// The venue's configured faults and the one-shot faults not yet taken.
pub struct FaultState {
    inner: Mutex<(Faults, Faults)>,
}

impl FaultState {
    pub fn new(faults: Faults) -> Self {
        FaultState {
            inner: Mutex::new((faults.clone(), faults)),
        }
    }

    /// Replaces the configuration and re-arms every one-shot fault.
    pub fn set(&self, faults: Faults) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = (faults.clone(), faults);
    }

    pub fn configured(&self) -> Faults {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// The plan of a new connection; one-shot faults go to the first connection that asks.
    pub fn claim(&self) -> Faults {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (configured, armed) = &mut *inner;
        if configured.every_connection {
            return configured.clone();
        }
        let plan = armed.clone();
        armed.drop_after = None;
        armed.stall_after = None;
        armed.stall_ms = None;
        armed.skip_depth = None;
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_faults_go_to_the_first_connection_only() {
        let state = FaultState::new(Faults {
            drop_after: Some(5),
            malformed_every: Some(3),
            ..Faults::default()
        });
        assert_eq!(state.claim().drop_after, Some(5));
        let second = state.claim();
        assert_eq!(second.drop_after, None);
        assert_eq!(second.malformed_every, Some(3));
        state.set(Faults {
            skip_depth: Some(2),
            every_connection: true,
            ..Faults::default()
        });
        assert_eq!(state.claim().skip_depth, Some(2));
        assert_eq!(state.claim().skip_depth, Some(2));
    }

    #[test]
    fn parses_control_parameters() {
        let faults = Faults::from_params([("stall_ms", "200"), ("skip_depth", "3")]).unwrap();
        assert_eq!(faults.stall_after, Some(0));
        assert_eq!(faults.skip_depth, Some(3));
        assert!(Faults::from_params([("drop_after", "x")]).is_err());
        assert!(Faults::from_params([("explode", "1")]).is_err());
        assert_eq!(
            Faults::from_params([("clear", "1")]).unwrap(),
            Faults::default()
        );
        assert!(faults.to_json().contains("\"stall_ms\":200"));
    }
}
