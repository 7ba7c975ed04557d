//! Module preparation: turns the bytes given to `install_code` into a module the engine can
//! instantiate.
//!
//! [`prepare`] gunzips (when needed), enforces the IC's size limits, validates with wasmparser,
//! checks the canister module requirements (imports only from `ic0`, known `canister_*` exports
//! of type `() -> ()`, no method exported twice, exactly one defined memory) and rewrites the
//! export section the way the IC's instrumentation does:
//!
//! - memory 0 is exported as `"memory"` and table 0 (if any) as `"table"`;
//! - every mutable global gets an export (`__persistent_mutable_global_<idx>` unless it is
//!   already exported) so the engine can snapshot and restore it;
//! - the start section is dropped and its function exported as `"canister_start"`, so
//!   instantiation never runs canister code.
//!
//! Every other section is copied byte for byte, so no function, global or table index changes
//! and no code is re-encoded.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::ops::Range;

use sha2::{Digest, Sha256};
use wasm_encoder::{ExportKind, ExportSection, RawSection};
use wasmparser::{
    BinaryReaderError, Encoding, Export, ExternalKind, FuncValidatorAllocations, Parser, Payload,
    TypeRef, ValidPayload, Validator, WasmFeatures, types::Types,
};

#[cfg(test)]
mod tests;

/// Largest accepted module (raw, after gunzip) and code section, as on the IC.
pub const MAX_WASM_MODULE_BYTES: usize = 100 * 1024 * 1024;
/// Largest accepted code section (the section's contents), as on the IC.
pub const MAX_CODE_SECTION_BYTES: usize = 10 * 1024 * 1024;

/// Export name under which memory 0 is exported in the prepared module.
pub const MEMORY_EXPORT: &str = "memory";
/// Export name under which table 0 (when present) is exported in the prepared module.
pub const TABLE_EXPORT: &str = "table";
/// Export name of the former start function in the prepared module.
pub const START_EXPORT: &str = "canister_start";
/// Prefix of the export names added for mutable globals that were not exported.
pub const PERSISTENT_GLOBAL_PREFIX: &str = "__persistent_mutable_global_";

const WASM_MAGIC: &[u8] = b"\0asm";
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const EXPORT_SECTION_ID: u8 = 7;

/// Why a module was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// The bytes start with neither the wasm magic `\0asm` nor the gzip magic `1f 8b 08`
    /// (the payload holds the first bytes in hex).
    #[error("not a wasm module: expected raw wasm (00 61 73 6d) or gzip (1f 8b 08), got {0}")]
    UnknownFormat(String),
    /// The gzip stream could not be decompressed.
    #[error("gzip decompression failed: {0}")]
    Gzip(String),
    /// The module (as installed, or after gunzip) is larger than [`MAX_WASM_MODULE_BYTES`].
    /// When gunzip is cut short at the limit, `size` is a lower bound.
    #[error("wasm module too large: at least {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// Size seen (a lower bound when decompression stopped at the limit).
        size: usize,
        /// The limit, [`MAX_WASM_MODULE_BYTES`].
        limit: usize,
    },
    /// The code section is larger than [`MAX_CODE_SECTION_BYTES`].
    #[error("wasm code section too large: {size} bytes, the limit is {limit} bytes")]
    CodeSectionTooLarge {
        /// Size of the code section's contents.
        size: usize,
        /// The limit, [`MAX_CODE_SECTION_BYTES`].
        limit: usize,
    },
    /// wasmparser rejected the module (the payload is its error text).
    #[error("invalid wasm module: {0}")]
    Invalid(String),
    /// An import from a module other than `ic0`.
    #[error("forbidden import \"{module}\".\"{name}\": canisters may import only from \"ic0\"")]
    ForbiddenImport {
        /// Module name of the import.
        module: String,
        /// Item name of the import.
        name: String,
    },
    /// A memory import: a canister must define its own memory.
    #[error("memory import \"{module}\".\"{name}\" is not allowed: canisters define their memory")]
    ImportedMemory {
        /// Module name of the import.
        module: String,
        /// Item name of the import.
        name: String,
    },
    /// An export whose name starts with `canister_` but is not a known entry point.
    #[error("unknown canister export \"{0}\"")]
    UnknownCanisterExport(String),
    /// A known `canister_*` export that is not a function of type `() -> ()`.
    #[error("canister export \"{0}\" must be a function of type () -> ()")]
    InvalidExportType(String),
    /// The same method name exported by two of update, query and composite query.
    #[error("method \"{0}\" is exported more than once (update, query or composite query)")]
    DuplicateMethod(String),
    /// The module defines no memory.
    #[error("wasm module defines no memory; a canister needs exactly one")]
    MissingMemory,
    /// The module defines more than one memory.
    #[error("wasm module defines {0} memories; a canister needs exactly one")]
    TooManyMemories(u32),
    /// A name the rewrite must add (`memory`, `table`, `__persistent_mutable_global_<idx>`)
    /// is already exported for a different item.
    #[error("export name \"{0}\" is reserved and already used for another item")]
    ReservedExportName(String),
}

/// A module ready to instantiate: validated, export section rewritten.
///
/// Invariants: `wasm` validates; it exports memory 0 as `"memory"`, table 0 (if any) as
/// `"table"`, every name in `mutable_global_exports`, and `"canister_start"` iff `has_start`;
/// it has no start section. Function, table, memory and global indices equal the original's.
#[derive(Debug, Clone)]
pub struct PreparedModule {
    /// SHA-256 of the bytes exactly as installed (gzipped or not): the IC's `module_hash`.
    pub module_hash: [u8; 32],
    /// Raw (un-gzipped) wasm with the rewritten export section and no start section.
    pub wasm: Vec<u8>,
    /// Method names from `canister_update <name>` exports.
    pub update_methods: BTreeSet<String>,
    /// Method names from `canister_query <name>` exports.
    pub query_methods: BTreeSet<String>,
    /// Method names from `canister_composite_query <name>` exports.
    pub composite_query_methods: BTreeSet<String>,
    /// The module exports `canister_init`.
    pub has_init: bool,
    /// The module exports `canister_pre_upgrade`.
    pub has_pre_upgrade: bool,
    /// The module exports `canister_post_upgrade`.
    pub has_post_upgrade: bool,
    /// The module exports `canister_global_timer`.
    pub has_global_timer: bool,
    /// The module exports `canister_heartbeat`.
    pub has_heartbeat: bool,
    /// The module exports `canister_inspect_message`.
    pub has_inspect_message: bool,
    /// The module exports `canister_on_low_wasm_memory`.
    pub has_on_low_wasm_memory: bool,
    /// True when the original module had a start section (now exported as "canister_start").
    pub has_start: bool,
    /// Export names of every mutable global, imported or defined, in global index order
    /// (the first existing export name, or the added `__persistent_mutable_global_<idx>`).
    pub mutable_global_exports: Vec<String>,
    /// Size in bytes of the custom sections (names and contents, without section headers),
    /// for canister_status memory metrics.
    pub custom_sections_bytes: u64,
    /// Memory 0 is a 64-bit memory (memory64): `ic0` is imported with i64 addresses and the
    /// heap may grow to [`crate::limits::MAX_WASM64_HEAP_BYTES`].
    pub memory64: bool,
    /// The module has the custom section `icp:private enhanced-orthogonal-persistence` (or
    /// its `icp:public` form): it declares enhanced orthogonal persistence, and upgrades
    /// of it must say what happens to the heap (`wasm_memory_persistence`).
    pub enhanced_orthogonal_persistence: bool,
}

/// Name of the custom section (after its `icp:private ` / `icp:public ` prefix) that
/// declares enhanced orthogonal persistence (the replica's
/// `ENHANCED_ORTHOGONAL_PERSISTENCE_SECTION`).
pub const ENHANCED_ORTHOGONAL_PERSISTENCE_SECTION: &str = "enhanced-orthogonal-persistence";

impl PreparedModule {
    /// The largest heap the replica allows for this module's memory width.
    #[must_use]
    pub fn max_heap_bytes(&self) -> u64 {
        if self.memory64 {
            crate::limits::MAX_WASM64_HEAP_BYTES
        } else {
            crate::limits::MAX_WASM32_HEAP_BYTES
        }
    }
}

/// Gunzips when the input starts with 1f 8b 08, validates and rewrites.
pub fn prepare(bytes: &[u8]) -> Result<PreparedModule, ModuleError> {
    check_size(bytes.len())?;
    let module_hash: [u8; 32] = Sha256::digest(bytes).into();
    let wasm: Cow<'_, [u8]> = if bytes.starts_with(GZIP_MAGIC) {
        Cow::Owned(gunzip(bytes)?)
    } else {
        Cow::Borrowed(bytes)
    };
    if !wasm.starts_with(WASM_MAGIC) {
        let head: Vec<String> = wasm.iter().take(8).map(|b| format!("{b:02x}")).collect();
        return Err(ModuleError::UnknownFormat(head.join(" ")));
    }
    let scan = scan(&wasm)?;
    let info = check_entry_points(&scan)?;
    let rewrite = plan_exports(&scan)?;
    let output = encode(&wasm, &scan, &rewrite.exports);
    Ok(PreparedModule {
        module_hash,
        wasm: output,
        update_methods: info.update_methods,
        query_methods: info.query_methods,
        composite_query_methods: info.composite_query_methods,
        has_init: info.has_init,
        has_pre_upgrade: info.has_pre_upgrade,
        has_post_upgrade: info.has_post_upgrade,
        has_global_timer: info.has_global_timer,
        has_heartbeat: info.has_heartbeat,
        has_inspect_message: info.has_inspect_message,
        has_on_low_wasm_memory: info.has_on_low_wasm_memory,
        has_start: scan.start.is_some(),
        mutable_global_exports: rewrite.mutable_global_exports,
        custom_sections_bytes: scan.custom_sections_bytes,
        memory64: scan.types.as_ref().memory_at(0).memory64,
        enhanced_orthogonal_persistence: scan.enhanced_orthogonal_persistence,
    })
}

/// The wasm features accepted: wasmparser's defaults (which include everything Rust's
/// wasm32 target emits), explicitly keeping the MVP-era proposals on and components off.
pub fn validation_features() -> WasmFeatures {
    let required = WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::REFERENCE_TYPES;
    (WasmFeatures::default() | required) - WasmFeatures::COMPONENT_MODEL
}

fn check_size(size: usize) -> Result<(), ModuleError> {
    if size > MAX_WASM_MODULE_BYTES {
        return Err(ModuleError::TooLarge {
            size,
            limit: MAX_WASM_MODULE_BYTES,
        });
    }
    Ok(())
}

/// Decompresses at most one byte more than the limit, so a gzip bomb costs bounded work.
fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_WASM_MODULE_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ModuleError::Gzip(e.to_string()))?;
    check_size(out.len())?;
    Ok(out)
}

fn invalid(e: BinaryReaderError) -> ModuleError {
    ModuleError::Invalid(e.to_string())
}

/// One section of the output, in order.
enum OutSection {
    /// Copied unchanged: section id and byte range of its contents in the input.
    Raw(u8, Range<usize>),
    /// The rebuilt export section.
    Exports,
}

/// What one validating pass over the module collects.
struct Scan<'a> {
    /// Output sections in order; contains exactly one `OutSection::Exports`.
    sections: Vec<OutSection>,
    exports: Vec<Export<'a>>,
    start: Option<u32>,
    custom_sections_bytes: u64,
    enhanced_orthogonal_persistence: bool,
    types: Types,
}

/// Validates `wasm` in one pass and records its sections, exports and start function.
/// Checks imports and the code section size as they are met.
fn scan(wasm: &[u8]) -> Result<Scan<'_>, ModuleError> {
    let features = validation_features();
    let mut validator = Validator::new_with_features(features);
    let mut parser = Parser::new(0);
    parser.set_features(features);
    let mut sections = Vec::new();
    let mut exports = Vec::new();
    let mut has_export_section = false;
    let mut start = None;
    let mut custom_sections_bytes = 0u64;
    let mut enhanced_orthogonal_persistence = false;
    let mut functions = Vec::new();
    let mut types = None;
    for payload in parser.parse_all(wasm) {
        let payload = payload.map_err(invalid)?;
        match &payload {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => {
                return Err(ModuleError::Invalid(
                    "a component is not a canister module".to_string(),
                ));
            }
            Payload::CodeSectionStart { range, .. } if range.len() > MAX_CODE_SECTION_BYTES => {
                return Err(ModuleError::CodeSectionTooLarge {
                    size: range.len(),
                    limit: MAX_CODE_SECTION_BYTES,
                });
            }
            _ => {}
        }
        match validator.payload(&payload).map_err(invalid)? {
            ValidPayload::Func(func, body) => functions.push((func, body)),
            ValidPayload::End(t) => types = Some(t),
            ValidPayload::Ok | ValidPayload::Parser(_) => {}
        }
        match &payload {
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    let import = import.map_err(invalid)?;
                    if import.module != "ic0" {
                        return Err(ModuleError::ForbiddenImport {
                            module: import.module.to_string(),
                            name: import.name.to_string(),
                        });
                    }
                    if let TypeRef::Memory(_) = import.ty {
                        return Err(ModuleError::ImportedMemory {
                            module: import.module.to_string(),
                            name: import.name.to_string(),
                        });
                    }
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    exports.push(export.map_err(invalid)?);
                }
                has_export_section = true;
                sections.push(OutSection::Exports);
                continue;
            }
            Payload::StartSection { func, .. } => {
                start = Some(*func);
                continue;
            }
            Payload::CustomSection(reader) => {
                custom_sections_bytes += reader.range().len() as u64;
                let name = reader.name();
                let metadata = name
                    .strip_prefix("icp:private ")
                    .or_else(|| name.strip_prefix("icp:public "));
                enhanced_orthogonal_persistence |=
                    metadata == Some(ENHANCED_ORTHOGONAL_PERSISTENCE_SECTION);
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push(OutSection::Raw(id, range));
        }
    }
    let mut allocations = FuncValidatorAllocations::default();
    for (func, body) in functions {
        let mut func_validator = func.into_validator(allocations);
        func_validator.validate(&body).map_err(invalid)?;
        allocations = func_validator.into_allocations();
    }
    let types =
        types.ok_or_else(|| ModuleError::Invalid("unexpected end of module".to_string()))?;
    if !has_export_section {
        // Right after the last section that must precede it (custom sections stay put).
        let at = sections
            .iter()
            .rposition(|s| matches!(s, OutSection::Raw(id, _) if precedes_exports(*id)))
            .map_or(0, |i| i + 1);
        sections.insert(at, OutSection::Exports);
    }
    Ok(Scan {
        sections,
        exports,
        start,
        custom_sections_bytes,
        enhanced_orthogonal_persistence,
        types,
    })
}

/// Whether a section must precede the export section (type, import, function, table, memory,
/// global, tag).
fn precedes_exports(id: u8) -> bool {
    matches!(id, 1..=6 | 13)
}

/// Entry points found among the exports.
#[derive(Default)]
struct EntryPoints {
    update_methods: BTreeSet<String>,
    query_methods: BTreeSet<String>,
    composite_query_methods: BTreeSet<String>,
    has_init: bool,
    has_pre_upgrade: bool,
    has_post_upgrade: bool,
    has_global_timer: bool,
    has_heartbeat: bool,
    has_inspect_message: bool,
    has_on_low_wasm_memory: bool,
}

/// Classifies the `canister_*` exports and checks the memory count.
fn check_entry_points(scan: &Scan<'_>) -> Result<EntryPoints, ModuleError> {
    let types = scan.types.as_ref();
    match types.memory_count() {
        0 => return Err(ModuleError::MissingMemory),
        1 => {}
        n => return Err(ModuleError::TooManyMemories(n)),
    }
    let mut info = EntryPoints::default();
    for export in &scan.exports {
        if !export.name.starts_with("canister_") {
            continue;
        }
        let flag = match export.name {
            "canister_init" => Some(&mut info.has_init),
            "canister_pre_upgrade" => Some(&mut info.has_pre_upgrade),
            "canister_post_upgrade" => Some(&mut info.has_post_upgrade),
            "canister_global_timer" => Some(&mut info.has_global_timer),
            "canister_heartbeat" => Some(&mut info.has_heartbeat),
            "canister_inspect_message" => Some(&mut info.has_inspect_message),
            "canister_on_low_wasm_memory" => Some(&mut info.has_on_low_wasm_memory),
            _ => None,
        };
        if let Some(flag) = flag {
            *flag = true;
        } else {
            let unknown = || ModuleError::UnknownCanisterExport(export.name.to_string());
            let (kind, method) = export.name.split_once(' ').ok_or_else(unknown)?;
            let set = match kind {
                "canister_update" => &mut info.update_methods,
                "canister_query" => &mut info.query_methods,
                "canister_composite_query" => &mut info.composite_query_methods,
                _ => return Err(unknown()),
            };
            set.insert(method.to_string());
        }
        let is_unit_function = export.kind == ExternalKind::Func && {
            let ty = &scan.types[types.core_function_at(export.index)];
            match &ty.composite_type.inner {
                wasmparser::CompositeInnerType::Func(f) => {
                    f.params().is_empty() && f.results().is_empty()
                }
                _ => false,
            }
        };
        if !is_unit_function {
            return Err(ModuleError::InvalidExportType(export.name.to_string()));
        }
    }
    let sets = [
        &info.update_methods,
        &info.query_methods,
        &info.composite_query_methods,
    ];
    for (i, a) in sets.iter().enumerate() {
        for b in &sets[i + 1..] {
            if let Some(method) = a.intersection(b).next() {
                return Err(ModuleError::DuplicateMethod(method.clone()));
            }
        }
    }
    Ok(info)
}

/// The rebuilt export list and the mutable globals' export names.
struct ExportPlan {
    exports: Vec<(String, ExportKind, u32)>,
    mutable_global_exports: Vec<String>,
}

/// Plans the output exports: the existing ones, then the added aliases.
fn plan_exports(scan: &Scan<'_>) -> Result<ExportPlan, ModuleError> {
    let types = scan.types.as_ref();
    let mut exports = Vec::with_capacity(scan.exports.len() + 4);
    let mut by_name: HashMap<&str, (ExportKind, u32)> = HashMap::new();
    let mut global_names: HashMap<u32, &str> = HashMap::new();
    for export in &scan.exports {
        let kind = match export.kind {
            ExternalKind::Func => ExportKind::Func,
            ExternalKind::Table => ExportKind::Table,
            ExternalKind::Memory => ExportKind::Memory,
            ExternalKind::Global => {
                global_names.entry(export.index).or_insert(export.name);
                ExportKind::Global
            }
            ExternalKind::Tag => ExportKind::Tag,
            ExternalKind::FuncExact => {
                return Err(ModuleError::Invalid(format!(
                    "exact function export \"{}\" is not supported",
                    export.name
                )));
            }
        };
        by_name.insert(export.name, (kind, export.index));
        exports.push((export.name.to_string(), kind, export.index));
    }
    // Adds `name` for (kind, index) unless it already names exactly that item.
    let mut add = |name: &str, kind: ExportKind, index: u32| match by_name.get(name) {
        Some(&existing) if existing == (kind, index) => Ok(()),
        Some(_) => Err(ModuleError::ReservedExportName(name.to_string())),
        None => {
            exports.push((name.to_string(), kind, index));
            Ok(())
        }
    };
    add(MEMORY_EXPORT, ExportKind::Memory, 0)?;
    if types.table_count() > 0 {
        add(TABLE_EXPORT, ExportKind::Table, 0)?;
    }
    let mut mutable_global_exports = Vec::new();
    for index in 0..types.global_count() {
        if !types.global_at(index).mutable {
            continue;
        }
        let name = match global_names.get(&index) {
            Some(name) => name.to_string(),
            None => {
                let name = format!("{PERSISTENT_GLOBAL_PREFIX}{index}");
                add(&name, ExportKind::Global, index)?;
                name
            }
        };
        mutable_global_exports.push(name);
    }
    if let Some(start) = scan.start {
        // An existing `canister_start` export was already refused as an unknown entry point.
        add(START_EXPORT, ExportKind::Func, start)?;
    }
    Ok(ExportPlan {
        exports,
        mutable_global_exports,
    })
}

/// Writes the output module: every recorded section raw, the export section rebuilt.
fn encode(wasm: &[u8], scan: &Scan<'_>, exports: &[(String, ExportKind, u32)]) -> Vec<u8> {
    let mut export_section = ExportSection::new();
    for (name, kind, index) in exports {
        export_section.export(name, *kind, *index);
    }
    let mut module = wasm_encoder::Module::new();
    for section in &scan.sections {
        match section {
            OutSection::Raw(id, range) => {
                debug_assert_ne!(*id, EXPORT_SECTION_ID);
                module.section(&RawSection {
                    id: *id,
                    data: &wasm[range.clone()],
                });
            }
            OutSection::Exports => {
                module.section(&export_section);
            }
        }
    }
    module.finish()
}
