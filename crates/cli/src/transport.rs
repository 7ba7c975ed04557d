//! The one seam between the CLI and an Internet Computer: raw candid calls.
//!
//! Every command talks to canisters through [`Transport`]: a query, an update, and a
//! pause while canister timers make progress. [`AgentTransport`] implements it with
//! ic-agent against a real network; `HarnessTransport` (feature `harness`) implements it
//! on the in-process IC, which is how every command is tested without a network and how
//! `canvault demo` runs.

use std::path::Path;
use std::time::Duration;

use candid::Principal;
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, Prime256v1Identity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};

/// The IC's reject codes (interface specification, "Reject codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectCode {
    /// Fatal system error.
    SysFatal,
    /// Transient system error: retrying may succeed.
    SysTransient,
    /// The destination canister does not exist or is invalid.
    DestinationInvalid,
    /// The canister rejected the call explicitly.
    CanisterReject,
    /// The canister trapped, is stopped, out of cycles, or has no such method.
    CanisterError,
    /// The outcome is unknown (timeout of a bounded-wait call).
    SysUnknown,
}

impl RejectCode {
    /// From the numeric code (unknown codes count as fatal).
    #[must_use]
    pub fn from_u64(code: u64) -> Self {
        match code {
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => Self::SysFatal,
        }
    }
}

/// Why a call did not return a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The IC (or the canister) rejected the call.
    #[error("rejected ({code:?}): {message}")]
    Reject {
        /// The reject code.
        code: RejectCode,
        /// The reject message, with the IC's error code (`IC0xyz`) when it gave one.
        message: String,
    },
    /// The network could not be reached, or it answered with an HTTP error.
    #[error("{0}")]
    Network(String),
    /// Anything else the client library reported (certificate, signing...).
    #[error("{0}")]
    Other(String),
}

/// Raw candid calls to canisters, as one identity.
pub trait Transport {
    /// The principal the calls are made as.
    fn caller(&self) -> Principal;

    /// A query call: candid-encoded argument in, candid-encoded reply out.
    ///
    /// # Errors
    /// The reject, or a network failure.
    fn query(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError>;

    /// An update call, awaited until it is answered.
    ///
    /// # Errors
    /// The reject, or a network failure.
    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError>;

    /// An update call to the management canister about the canister `effective`: a real
    /// network routes it by `effective`, the in-process IC by the argument's `canister_id`.
    ///
    /// # Errors
    /// The reject, or a network failure.
    fn management_update(
        &self,
        effective: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let _ = effective;
        self.update(Principal::management_canister(), method, arg)
    }

    /// Lets time pass while canister timers work (between two status polls); returns
    /// how much network time passed.
    fn pause(&self) -> Duration;

    /// A short name of the network, for messages.
    fn network(&self) -> String;
}

/// The network addresses behind the short names accepted by `--network`.
#[must_use]
pub fn network_url(network: &str) -> String {
    match network {
        "ic" | "mainnet" => "https://icp-api.io".to_string(),
        "local" => "http://127.0.0.1:4943".to_string(),
        url => url.to_string(),
    }
}

/// A real network through ic-agent (HTTPS to a boundary node, or a local replica).
pub struct AgentTransport {
    agent: Agent,
    runtime: tokio::runtime::Runtime,
    url: String,
    caller: Principal,
    poll_interval: Duration,
}

/// Why an [`AgentTransport`] could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The identity file could not be read or parsed.
    #[error("cannot use the identity file {path}: {reason}")]
    Identity {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The URL or the network is unusable.
    #[error("cannot connect to {url}: {reason}")]
    Network {
        /// The network URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Reads a PEM identity: Ed25519 (`dfx identity`'s default), secp256k1 or P-256.
fn load_identity(path: &Path) -> Result<Box<dyn Identity>, ConnectError> {
    let err = |reason: String| ConnectError::Identity {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if let Ok(id) = BasicIdentity::from_pem(&pem) {
        return Ok(Box::new(id));
    }
    if let Ok(id) = Secp256k1Identity::from_pem(&pem) {
        return Ok(Box::new(id));
    }
    Prime256v1Identity::from_pem(&pem)
        .map(|id| Box::new(id) as Box<dyn Identity>)
        .map_err(|_| err("not an Ed25519, secp256k1 or P-256 private key in PEM format".into()))
}

impl AgentTransport {
    /// Connects to `network` (`ic`, `local` or a URL) as the identity in `identity`
    /// (anonymous without one). Fetches the root key of any network but `ic`.
    ///
    /// # Errors
    /// An unreadable identity, a bad URL, or (not `ic`) a network that cannot be reached.
    pub fn connect(network: &str, identity: Option<&Path>) -> Result<Self, ConnectError> {
        let url = network_url(network);
        let identity: Box<dyn Identity> = match identity {
            Some(path) => load_identity(path)?,
            None => Box::new(AnonymousIdentity),
        };
        let caller = identity.sender().map_err(|reason| ConnectError::Identity {
            path: "(identity)".into(),
            reason,
        })?;
        let net_err = |reason: String| ConnectError::Network {
            url: url.clone(),
            reason,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| net_err(e.to_string()))?;
        let agent = Agent::builder()
            .with_url(url.clone())
            .with_boxed_identity(identity)
            .build()
            .map_err(|e| net_err(e.to_string()))?;
        if !matches!(network, "ic" | "mainnet") {
            runtime
                .block_on(agent.fetch_root_key())
                .map_err(|e| net_err(e.to_string()))?;
        }
        Ok(Self {
            agent,
            runtime,
            url,
            caller,
            poll_interval: Duration::from_secs(2),
        })
    }
}

/// Sorts an ic-agent error into reject, network or other.
fn from_agent(e: AgentError) -> TransportError {
    match e {
        AgentError::CertifiedReject { reject, .. }
        | AgentError::UncertifiedReject { reject, .. } => {
            let message = match &reject.error_code {
                Some(code) if !reject.reject_message.contains(code.as_str()) => {
                    format!("{} ({code})", reject.reject_message)
                }
                _ => reject.reject_message.clone(),
            };
            TransportError::Reject {
                code: RejectCode::from_u64(reject.reject_code as u64),
                message,
            }
        }
        AgentError::TransportError(e) => TransportError::Network(e.to_string()),
        AgentError::HttpError(p) => TransportError::Network(format!(
            "HTTP {} {}",
            p.status,
            String::from_utf8_lossy(&p.content).trim()
        )),
        AgentError::TimeoutWaitingForResponse() => {
            TransportError::Network("the request timed out".into())
        }
        other => TransportError::Other(other.to_string()),
    }
}

impl Transport for AgentTransport {
    fn caller(&self) -> Principal {
        self.caller
    }

    fn query(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        self.runtime
            .block_on(self.agent.query(&canister, method).with_arg(arg).call())
            .map_err(from_agent)
    }

    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        self.runtime
            .block_on(
                self.agent
                    .update(&canister, method)
                    .with_arg(arg)
                    .call_and_wait(),
            )
            .map_err(from_agent)
    }

    fn management_update(
        &self,
        effective: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        self.runtime
            .block_on(
                self.agent
                    .update(&Principal::management_canister(), method)
                    .with_effective_canister_id(effective)
                    .with_arg(arg)
                    .call_and_wait(),
            )
            .map_err(from_agent)
    }

    fn pause(&self) -> Duration {
        std::thread::sleep(self.poll_interval);
        self.poll_interval
    }

    fn network(&self) -> String {
        self.url.clone()
    }
}

#[cfg(feature = "harness")]
pub use harness::HarnessTransport;

#[cfg(feature = "harness")]
mod harness {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use candid::Principal;
    use ic_harness::Harness;

    use super::{RejectCode, Transport, TransportError};

    /// The in-process IC of `ic-harness`: calls are ingress messages, and
    /// [`Transport::pause`] executes rounds so canister timers run.
    #[derive(Clone)]
    pub struct HarnessTransport {
        ic: Rc<RefCell<Harness>>,
        caller: Principal,
        rounds_per_pause: u64,
    }

    impl HarnessTransport {
        /// Calls into `ic` as `caller`; each pause runs one round.
        #[must_use]
        pub fn new(ic: Rc<RefCell<Harness>>, caller: Principal) -> Self {
            Self {
                ic,
                caller,
                rounds_per_pause: 1,
            }
        }

        /// The same IC, as another principal.
        #[must_use]
        pub fn as_caller(&self, caller: Principal) -> Self {
            Self {
                caller,
                ..self.clone()
            }
        }

        /// Each pause runs `rounds` rounds (at least one).
        #[must_use]
        pub fn with_rounds_per_pause(mut self, rounds: u64) -> Self {
            self.rounds_per_pause = rounds.max(1);
            self
        }

        /// The IC, for setup and inspection.
        #[must_use]
        pub fn ic(&self) -> Rc<RefCell<Harness>> {
            Rc::clone(&self.ic)
        }
    }

    fn from_reject(r: ic_harness::Reject) -> TransportError {
        TransportError::Reject {
            code: RejectCode::from_u64(r.code as u64),
            message: r.message,
        }
    }

    impl Transport for HarnessTransport {
        fn caller(&self) -> Principal {
            self.caller
        }

        fn query(
            &self,
            canister: Principal,
            method: &str,
            arg: Vec<u8>,
        ) -> Result<Vec<u8>, TransportError> {
            self.ic
                .borrow_mut()
                .query_call(canister, self.caller, method, arg)
                .map_err(from_reject)
        }

        fn update(
            &self,
            canister: Principal,
            method: &str,
            arg: Vec<u8>,
        ) -> Result<Vec<u8>, TransportError> {
            self.ic
                .borrow_mut()
                .update_call(canister, self.caller, method, arg)
                .map_err(from_reject)
        }

        fn pause(&self) -> Duration {
            let mut ic = self.ic.borrow_mut();
            let before = ic.time_nanos();
            for _ in 0..self.rounds_per_pause {
                ic.tick();
            }
            Duration::from_nanos(ic.time_nanos().saturating_sub(before))
        }

        fn network(&self) -> String {
            "the in-process IC".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Throwaway keys generated for these tests (`openssl genpkey -algorithm ed25519`,
    /// `openssl ecparam -name secp256k1 -genkey -noout`).
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIBHbN+LVwnr4u0P9+JsFAFtUnRaSDpV5FSM37YRT1Yam
-----END PRIVATE KEY-----
";
    const SECP256K1_PEM: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIJvE+mB6hwmmNxzedY717qDKnZbxoaZ18ofz8SP9HJ7xoAcGBSuBBAAK
oUQDQgAEcLCWLocJwH95P3VjPOWCfJEszWyOeIpgjpkr0BOllOthFhs4LKk6SY1l
a2SgHJ3+c6sscn06V/Byp5jBUtYMqw==
-----END EC PRIVATE KEY-----
";

    fn connect_with(pem: &str) -> Result<AgentTransport, ConnectError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("identity.pem");
        std::fs::write(&path, pem).expect("writes");
        AgentTransport::connect("ic", Some(&path))
    }

    #[test]
    fn should_call_as_the_pem_identity() {
        let ed = connect_with(ED25519_PEM).expect("an Ed25519 key").caller();
        let k1 = connect_with(SECP256K1_PEM)
            .expect("a secp256k1 key")
            .caller();
        assert_ne!(ed, k1);
        assert_ne!(ed, Principal::anonymous());
        assert_eq!(ed.as_slice().len(), 29, "a self-authenticating principal");
        assert_eq!(
            connect_with(ED25519_PEM).expect("again").caller(),
            ed,
            "deterministic"
        );
        let anonymous = AgentTransport::connect("ic", None).expect("no identity");
        assert_eq!(anonymous.caller(), Principal::anonymous());
        assert_eq!(anonymous.network(), "https://icp-api.io");
    }

    #[test]
    fn should_explain_an_unusable_identity_file() {
        let e = connect_with("not a key")
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.starts_with("cannot use the identity file ") && e.ends_with("in PEM format"),
            "{e}"
        );
        let e = AgentTransport::connect("ic", Some(Path::new("/nonexistent/identity.pem")))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.starts_with("cannot use the identity file /nonexistent/identity.pem: "),
            "{e}"
        );
    }

    #[test]
    fn should_report_an_unreachable_local_network_as_a_sentence() {
        // Port 9 (discard) on the loopback interface: nothing listens, the one request
        // for the root key is refused at once.
        let e = AgentTransport::connect("http://127.0.0.1:9", None)
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.starts_with("cannot connect to http://127.0.0.1:9: "),
            "{e}"
        );
        assert_eq!(network_url("local"), "http://127.0.0.1:4943");
        assert_eq!(network_url("https://example.org"), "https://example.org");
    }
}
