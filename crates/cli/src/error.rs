//! Every error the CLI reports, as a sentence a person can act on.
//!
//! Raw rejects are sorted by cause (permission, not found, cycles, network) so the
//! message says what went wrong and what to do; candid or debug output never reaches
//! the user.

use std::path::Path;

use candid::Principal;
use canvault_protocol::kit_api::KitError;
use canvault_protocol::vault_api::{Role, VaultError};

use crate::transport::{ConnectError, RejectCode, TransportError};

/// What went wrong, for the person at the terminal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A vault refused for lack of a role.
    #[error(
        "the vault refused: {caller} is not {needed} of vault {vault} (ask an owner to grant you the {role:?} role)"
    )]
    VaultUnauthorized {
        /// The vault.
        vault: Principal,
        /// Who called.
        caller: Principal,
        /// "an owner", "an owner or reader", ...
        needed: String,
        /// The role to ask for.
        role: Role,
    },
    /// A vault refused the request for another reason.
    #[error("the vault {vault} refused to {action}: {error}")]
    Vault {
        /// The vault.
        vault: Principal,
        /// What was asked, e.g. "list snapshots".
        action: String,
        /// Its typed error.
        error: Box<VaultError>,
    },
    /// The source kit of an app canister refused.
    #[error("the canvault kit of canister {canister} refused to {action}: {error}{hint}")]
    Kit {
        /// The app canister.
        canister: Principal,
        /// What was asked.
        action: String,
        /// Its typed error.
        error: Box<KitError>,
        /// Advice, starting with "; " when present.
        hint: String,
    },
    /// A canister or snapshot that does not exist.
    #[error("{what} does not exist on {network}{hint}")]
    NotFound {
        /// What was looked for.
        what: String,
        /// Where.
        network: String,
        /// Advice, starting with "; " when present.
        hint: String,
    },
    /// The caller may not do this (a controller-only management call, an inspect refusal).
    #[error("{canister} refused {method}: you ({caller}) are not allowed ({message})")]
    NotAllowed {
        /// The canister.
        canister: Principal,
        /// The method.
        method: String,
        /// Who called.
        caller: Principal,
        /// The IC's message.
        message: String,
    },
    /// A canister cannot pay for the call.
    #[error(
        "canister {canister} is out of cycles and cannot run {method} (top it up, e.g. `dfx canister deposit-cycles 1000000000000 {canister}`): {message}"
    )]
    OutOfCycles {
        /// The canister.
        canister: Principal,
        /// The method.
        method: String,
        /// The IC's message.
        message: String,
    },
    /// The network could not be reached.
    #[error(
        "cannot reach {network}: {message} (check --network and your connection, then run the command again)"
    )]
    Network {
        /// The network.
        network: String,
        /// The cause.
        message: String,
    },
    /// A canister rejected or failed a call for another reason.
    #[error("canister {canister} failed {method}: {message}")]
    Rejected {
        /// The canister.
        canister: Principal,
        /// The method.
        method: String,
        /// The IC's message.
        message: String,
    },
    /// A reply did not have the expected type.
    #[error(
        "canister {canister} answered {method} with an unexpected reply ({message}); is it a canvault {kind} of a compatible version?"
    )]
    BadReply {
        /// The canister.
        canister: Principal,
        /// The method.
        method: String,
        /// "vault", "app with the canvault kit" or "factory".
        kind: &'static str,
        /// The candid error.
        message: String,
    },
    /// Downloaded or stored data failed verification.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A snapshot file is malformed.
    #[error("{path} is not a valid canvault snapshot file: {reason}")]
    BadFile {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a local file failed.
    #[error("cannot {action} {path}: {reason}")]
    Io {
        /// "read", "write", "create"...
        action: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The identity file or the network address is unusable.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// Something waited too long.
    #[error("gave up waiting: {0}")]
    Timeout(String),
    /// The command line or the situation does not allow the request.
    #[error("{0}")]
    Usage(String),
}

/// `Result` with a [`CliError`].
pub type CliResult<T> = Result<T, CliError>;

impl CliError {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: &Path, e: &std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// A malformed snapshot file.
    pub fn bad_file(path: &Path, reason: impl Into<String>) -> Self {
        Self::BadFile {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }

    /// Sorts a transport error for a call to `canister.method` made by `caller` on `network`.
    #[must_use]
    pub fn from_transport(
        e: TransportError,
        canister: Principal,
        method: &str,
        caller: Principal,
        network: &str,
    ) -> Self {
        let method = method.to_string();
        match e {
            TransportError::Network(message) => Self::Network {
                network: network.to_string(),
                message,
            },
            TransportError::Other(message) => Self::Rejected {
                canister,
                method,
                message,
            },
            TransportError::Reject { code, message } => {
                let lower = message.to_lowercase();
                if code == RejectCode::DestinationInvalid
                    || lower.contains("ic0301")
                    || (lower.contains("canister") && lower.contains("not found"))
                {
                    Self::NotFound {
                        what: format!("canister {canister}"),
                        network: network.to_string(),
                        hint: "; check the canister id and --network".into(),
                    }
                } else if lower.contains("out of cycles")
                    || lower.contains("ic0207")
                    || lower.contains("insufficient cycles")
                    || lower.contains("frozen")
                {
                    Self::OutOfCycles {
                        canister,
                        method,
                        message,
                    }
                } else if lower.contains("has no update method")
                    || lower.contains("has no query method")
                    || lower.contains("ic0536")
                    || lower.contains("ic0302")
                {
                    Self::Rejected {
                        canister,
                        method: method.clone(),
                        message: format!(
                            "it has no method {method}; is it the right canister? ({message})"
                        ),
                    }
                } else if lower.contains("only the controllers")
                    || lower.contains("not a controller")
                    || lower.contains("not authorized")
                    || lower.contains("unauthorized")
                    || lower.contains("ic0516")
                    || lower.contains("ic0406")
                {
                    Self::NotAllowed {
                        canister,
                        method,
                        caller,
                        message,
                    }
                } else {
                    Self::Rejected {
                        canister,
                        method,
                        message,
                    }
                }
            }
        }
    }

    /// A vault's typed error, for `action` asked by `caller`.
    #[must_use]
    pub fn from_vault(e: VaultError, vault: Principal, action: &str, network: &str) -> Self {
        match e {
            VaultError::Unauthorized { caller, needed } => {
                let (needed_text, role) = match needed {
                    Role::Owner => ("an owner".to_string(), Role::Owner),
                    Role::Writer => ("an owner or writer".to_string(), Role::Writer),
                    Role::Reader => ("an owner or reader".to_string(), Role::Reader),
                };
                Self::VaultUnauthorized {
                    vault,
                    caller,
                    needed: needed_text,
                    role,
                }
            }
            VaultError::SnapshotNotFound(id) => Self::NotFound {
                what: format!("snapshot {id} in vault {vault}"),
                network: network.to_string(),
                hint: "; list the snapshots with `canvault snapshot list`".into(),
            },
            VaultError::JobNotFound(id) => Self::NotFound {
                what: format!("restore job {id} in vault {vault}"),
                network: network.to_string(),
                hint: String::new(),
            },
            error => Self::Vault {
                vault,
                action: action.to_string(),
                error: Box::new(error),
            },
        }
    }

    /// A kit's typed error.
    #[must_use]
    pub fn from_kit(error: KitError, canister: Principal, action: &str) -> Self {
        let hint = match &error {
            KitError::Unauthorized(_) => {
                "; only the app's controllers and the kit's admins may do this (use the controller's identity)"
            }
            KitError::NotConfigured => {
                "; configure the vault first: canvault_configure(record { vault = opt principal \"<vault>\" })"
            }
            KitError::RestoreInProgress => {
                "; wait for the restore or abandon it with canvault_abandon_restore"
            }
            KitError::BackupInProgress => "; wait for it to finish (see `canvault backup status`)",
            _ => "",
        };
        Self::Kit {
            canister,
            action: action.to_string(),
            error: Box::new(error),
            hint: hint.to_string(),
        }
    }
}
