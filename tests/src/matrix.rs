//! The endpoint × role matrix: every method of a canister's `.did`, called as every
//! role, checked against the permission table kept beside the canister's code.
//!
//! A permission table is a markdown table in `canisters/<name>/permissions.md` whose
//! header is `| method | <role> | <role> | ... |` and whose cells are `allow` or `deny`.
//! [`check_matrix`] fails when:
//! - a method of the `.did` has no row, or a row names a method the `.did` lacks;
//! - a role marked `deny` is not refused with a typed "unauthorized" error or a reject
//!   (inspect_message), or a refused call changed the canister's stable memory;
//! - a role marked `allow` is refused.
//!
//! Arguments are the smallest values of each parameter type (0, "", empty vectors,
//! 32-byte zero blobs since digests decode only at that length, `null` options, the
//! first variant): valid for the interface and as harmless as possible, so that an
//! allowed call exercises the role check without wrecking the setup. Where the role check
//! depends on what the argument names (the factory's `delete_vault` asks whether the
//! caller controls *that* vault), the subject gives the method's argument instead
//! ([`Subject::args`]), naming an object of the setup.
//! Each method runs on a fresh setup, denied roles first (their calls must change
//! nothing); an allowed call that changed stable memory (it deleted the vault, say) is
//! followed by a fresh setup, so every allowed role meets the setup as it was made.

use std::collections::BTreeMap;

use candid::types::value::{IDLArgs, IDLField, IDLValue, VariantValue};
use candid::types::{Label, Type, TypeEnv, TypeInner};
use candid::{Int, Nat, Principal};
use candid_parser::utils::CandidSource;
use ic_harness::{CanisterId, Harness, Reject};

/// One cell of a permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The role may call the method (its answer is not "unauthorized").
    Allow,
    /// The role is refused, and nothing changes.
    Deny,
}

/// A canister's permission table: role names, and per method one cell per role.
#[derive(Debug, Clone)]
pub struct PermissionTable {
    /// The role columns, in order.
    pub roles: Vec<String>,
    /// Method name → one access per role column.
    pub rows: BTreeMap<String, Vec<Access>>,
}

impl PermissionTable {
    /// Parses the first markdown table of `markdown` whose first header cell is `method`.
    ///
    /// # Panics
    /// If there is no such table, a cell is neither `allow` nor `deny`, a row has the
    /// wrong width or a method is listed twice.
    pub fn parse(markdown: &str) -> Self {
        let cells = |line: &str| -> Vec<String> {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        };
        let mut lines = markdown
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("| method |"));
        let header = cells(lines.next().expect("a `| method | ... |` table"));
        let roles = header[1..].to_vec();
        let mut rows = BTreeMap::new();
        for line in lines
            .skip(1)
            .take_while(|l| l.trim_start().starts_with('|'))
        {
            let row = cells(line);
            assert_eq!(row.len(), roles.len() + 1, "row width: {line}");
            let access = row[1..]
                .iter()
                .map(|c| match c.as_str() {
                    "allow" => Access::Allow,
                    "deny" => Access::Deny,
                    other => panic!("cell {other:?} in {line}: write allow or deny"),
                })
                .collect();
            assert!(
                rows.insert(row[0].clone(), access).is_none(),
                "{} listed twice",
                row[0]
            );
        }
        Self { roles, rows }
    }

    /// The table as markdown rows, to embed in a document and compare.
    pub fn render(&self) -> String {
        let mut out = format!("| method | {} |\n", self.roles.join(" | "));
        out.push_str(&format!("|---|{}\n", "---|".repeat(self.roles.len())));
        for (method, cells) in &self.rows {
            let cells: Vec<&str> = cells
                .iter()
                .map(|a| match a {
                    Access::Allow => "allow",
                    Access::Deny => "deny",
                })
                .collect();
            out.push_str(&format!("| `{method}` | {} |\n", cells.join(" | ")));
        }
        out
    }
}

/// One method of a service.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Method name.
    pub name: String,
    /// Parameter types.
    pub args: Vec<Type>,
    /// Result types.
    pub rets: Vec<Type>,
    /// Query (called as a query) or update.
    pub query: bool,
}

/// The methods of the service in `did`, with its type environment.
///
/// # Panics
/// If `did` does not parse or has no service.
pub fn endpoints(did: &str) -> (TypeEnv, Vec<Endpoint>) {
    let (env, actor) = CandidSource::Text(did).load().expect("the .did parses");
    let actor = actor.expect("the .did has a service");
    let methods = env.as_service(&actor).expect("a service type").to_vec();
    let endpoints = methods
        .into_iter()
        .map(|(name, ty)| {
            let func = env.as_func(&ty).expect("a method type");
            Endpoint {
                name,
                args: func.args.clone(),
                rets: func.rets.clone(),
                query: func.is_query(),
            }
        })
        .collect();
    (env, endpoints)
}

/// The smallest value of `ty`.
fn minimal(env: &TypeEnv, ty: &Type) -> IDLValue {
    match ty.as_ref() {
        TypeInner::Var(id) => minimal(env, env.rec_find_type(id).expect("type defined")),
        TypeInner::Knot(_) | TypeInner::Unknown | TypeInner::Future => {
            panic!("unexpected type {ty}")
        }
        TypeInner::Null => IDLValue::Null,
        TypeInner::Bool => IDLValue::Bool(false),
        TypeInner::Nat => IDLValue::Nat(Nat::from(0u8)),
        TypeInner::Int => IDLValue::Int(Int::from(0)),
        TypeInner::Nat8 => IDLValue::Nat8(0),
        TypeInner::Nat16 => IDLValue::Nat16(0),
        TypeInner::Nat32 => IDLValue::Nat32(0),
        TypeInner::Nat64 => IDLValue::Nat64(0),
        TypeInner::Int8 => IDLValue::Int8(0),
        TypeInner::Int16 => IDLValue::Int16(0),
        TypeInner::Int32 => IDLValue::Int32(0),
        TypeInner::Int64 => IDLValue::Int64(0),
        TypeInner::Float32 => IDLValue::Float32(0.0),
        TypeInner::Float64 => IDLValue::Float64(0.0),
        TypeInner::Text => IDLValue::Text(String::new()),
        TypeInner::Reserved => IDLValue::Reserved,
        TypeInner::Empty => panic!("no value of type empty"),
        TypeInner::Principal => IDLValue::Principal(Principal::management_canister()),
        TypeInner::Opt(_) => IDLValue::None,
        // 32 bytes: blobs that carry a SHA-256 digest decode only at that length.
        TypeInner::Vec(t) if matches!(t.as_ref(), TypeInner::Nat8) => IDLValue::Blob(vec![0; 32]),
        TypeInner::Vec(_) => IDLValue::Vec(Vec::new()),
        TypeInner::Record(fields) => IDLValue::Record(
            fields
                .iter()
                .map(|f| IDLField {
                    id: (*f.id).clone(),
                    val: minimal(env, &f.ty),
                })
                .collect(),
        ),
        TypeInner::Variant(fields) => {
            let f = &fields[0];
            IDLValue::Variant(VariantValue(
                Box::new(IDLField {
                    id: (*f.id).clone(),
                    val: minimal(env, &f.ty),
                }),
                0,
            ))
        }
        TypeInner::Func(_) => IDLValue::Func(Principal::management_canister(), String::new()),
        TypeInner::Service(_) => IDLValue::Service(Principal::management_canister()),
        TypeInner::Class(..) => panic!("no value of a class type"),
    }
}

/// The candid-encoded minimal arguments of `endpoint`.
pub fn minimal_args(env: &TypeEnv, endpoint: &Endpoint) -> Vec<u8> {
    let args = IDLArgs::new(
        &endpoint
            .args
            .iter()
            .map(|t| minimal(env, t))
            .collect::<Vec<_>>(),
    );
    args.to_bytes_with_types(env, &endpoint.args)
        .expect("minimal arguments encode")
}

/// What a call answered, reduced to what the matrix checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A typed "unauthorized" error, or a reject (inspect_message or the method).
    Refused(String),
    /// Anything else: the role check let the caller through.
    Admitted(String),
}

/// True if the value is `variant { Err = variant { <refusal> ... } }` (also inside an
/// `opt`), where a refusal is a label containing "uthori" (Unauthorized, NotAuthorized)
/// or one of `refusals` (e.g. the example app's `NotAMember`).
fn is_refusal(value: &IDLValue, refusals: &[&str]) -> bool {
    match value {
        IDLValue::Variant(VariantValue(field, _)) => {
            let label = match &field.id {
                Label::Named(n) => n.clone(),
                other => other.to_string(),
            };
            if label.contains("uthori") || refusals.contains(&label.as_str()) {
                return true;
            }
            label == "Err" && is_refusal(&field.val, refusals)
        }
        IDLValue::Opt(inner) => is_refusal(inner, refusals),
        _ => false,
    }
}

/// Classifies a reply of `endpoint` (`refusals`: see [`is_refusal`]).
pub fn classify(
    env: &TypeEnv,
    endpoint: &Endpoint,
    refusals: &[&str],
    result: &Result<Vec<u8>, Reject>,
) -> Answer {
    match result {
        Err(reject) => {
            let text = format!("reject {:?}: {}", reject.code, reject.message);
            // IC0406: `canister_inspect_message` did not accept the ingress message.
            if reject.message.contains("uthori") || reject.message.contains("IC0406") {
                Answer::Refused(text)
            } else {
                // A reject that does not say "unauthorized" got past the role check (or
                // trapped before it, which a denied cell then reports).
                Answer::Admitted(text)
            }
        }
        Ok(bytes) => {
            let args = IDLArgs::from_bytes_with_types(bytes, env, &endpoint.rets)
                .unwrap_or_else(|e| panic!("{}: reply does not decode: {e}", endpoint.name));
            let text = args.to_string();
            if args.args.iter().any(|v| is_refusal(v, refusals)) {
                Answer::Refused(text)
            } else {
                Answer::Admitted(text)
            }
        }
    }
}

/// A canister under test, freshly set up for one method.
pub struct Subject {
    /// The in-process IC holding it.
    pub ic: Harness,
    /// The canister whose interface is checked.
    pub canister: CanisterId,
    /// Role name (as in the table's header) → the principal acting in that role.
    pub actors: BTreeMap<String, Principal>,
    /// Method name → its candid-encoded argument, for methods whose role check depends
    /// on the object the argument names; the others get [`minimal_args`].
    pub args: BTreeMap<String, Vec<u8>>,
}

/// Checks every method of `did` against `table`, calling `setup` for a fresh subject
/// per method; `refusals` names the error variants that also count as a refusal.
/// Returns the failures (empty: the matrix holds).
///
/// # Panics
/// If the subject lacks an actor for a role of the table.
pub fn check_matrix(
    did: &str,
    table: &PermissionTable,
    refusals: &[&str],
    setup: impl Fn() -> Subject,
) -> Vec<String> {
    let (env, endpoints) = endpoints(did);
    let mut failures = Vec::new();
    let methods: Vec<&str> = endpoints.iter().map(|e| e.name.as_str()).collect();
    for name in table.rows.keys() {
        if !methods.contains(&name.as_str()) {
            failures.push(format!(
                "{name}: in the permission table but not in the .did"
            ));
        }
    }
    for name in setup().args.keys() {
        if !methods.contains(&name.as_str()) {
            failures.push(format!(
                "{name}: an argument given for a method not in the .did"
            ));
        }
    }
    for endpoint in &endpoints {
        let Some(cells) = table.rows.get(&endpoint.name) else {
            failures.push(format!(
                "{}: a method of the .did without a row in the permission table",
                endpoint.name
            ));
            continue;
        };
        let mut subject = setup();
        // An allowed call changed stable memory: the next allowed role gets a fresh setup.
        let mut dirty = false;
        let mut order: Vec<(usize, Access)> = cells.iter().copied().enumerate().collect();
        // Denied roles first: their calls must change nothing, so the allowed ones still
        // see the setup as it was made.
        order.sort_by_key(|(_, a)| *a == Access::Allow);
        for (column, access) in order {
            let role = &table.roles[column];
            let caller = *subject
                .actors
                .get(role)
                .unwrap_or_else(|| panic!("no actor for role {role}"));
            if dirty {
                subject = setup();
            }
            let arg = subject
                .args
                .get(&endpoint.name)
                .cloned()
                .unwrap_or_else(|| minimal_args(&env, endpoint));
            let before = subject.ic.get_stable_memory(subject.canister);
            let result = if endpoint.query {
                subject
                    .ic
                    .query_call(subject.canister, caller, &endpoint.name, arg)
            } else {
                subject
                    .ic
                    .update_call(subject.canister, caller, &endpoint.name, arg)
            };
            let answer = classify(&env, endpoint, refusals, &result);
            let changed = subject.ic.get_stable_memory(subject.canister) != before;
            dirty = access == Access::Allow && changed;
            match (access, &answer) {
                (Access::Deny, Answer::Refused(_)) => {
                    if changed {
                        failures.push(format!(
                            "{} as {role}: refused, but stable memory changed",
                            endpoint.name
                        ));
                    }
                }
                (Access::Allow, Answer::Admitted(_)) => {}
                (Access::Deny, Answer::Admitted(text)) => failures.push(format!(
                    "{} as {role}: the table says deny, the canister answered {text}",
                    endpoint.name
                )),
                (Access::Allow, Answer::Refused(text)) => failures.push(format!(
                    "{} as {role}: the table says allow, the canister refused: {text}",
                    endpoint.name
                )),
            }
        }
    }
    failures
}
