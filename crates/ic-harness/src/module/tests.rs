//! Tests for module preparation, on modules built with wasm-encoder.

use std::borrow::Cow;
use std::io::Write;

use sha2::{Digest, Sha256};
use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, EntityType, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, GlobalType, ImportSection, Instruction, MemorySection,
    MemoryType, Module, RefType, StartSection, TableSection, TableType, TypeSection, ValType,
};
use wasmparser::{ExternalKind, Parser, Payload, Validator};

use super::*;

/// Type 0 is `() -> ()`, type 1 is `(i32) -> ()`.
struct Spec {
    func_imports: Vec<(&'static str, &'static str)>,
    /// Mutability of globals imported from `ic0` (type i32).
    global_imports: Vec<bool>,
    memory_import: bool,
    memories: u32,
    table: bool,
    /// Mutability of defined i32 globals.
    globals: Vec<bool>,
    /// Type index of each defined function.
    funcs: Vec<u32>,
    /// `None`: no export section at all.
    exports: Option<Vec<(String, ExportKind, u32)>>,
    start: Option<u32>,
    /// A custom section placed just before the code section.
    custom_before_code: Option<(&'static str, Vec<u8>)>,
    /// A raw code section body replacing the generated one.
    raw_code_body: Option<Vec<u8>>,
}

impl Spec {
    fn new() -> Self {
        Spec {
            func_imports: vec![],
            global_imports: vec![],
            memory_import: false,
            memories: 1,
            table: false,
            globals: vec![],
            funcs: vec![0],
            exports: Some(vec![]),
            start: None,
            custom_before_code: None,
            raw_code_body: None,
        }
    }

    fn with(mut self, edit: impl FnOnce(&mut Self)) -> Self {
        edit(&mut self);
        self
    }

    fn export(mut self, name: &str, kind: ExportKind, index: u32) -> Self {
        self.exports
            .get_or_insert_with(Vec::new)
            .push((name.to_string(), kind, index));
        self
    }

    fn func_export(self, name: &str) -> Self {
        let index = self.func_imports.len() as u32;
        self.export(name, ExportKind::Func, index)
    }

    fn build(&self) -> Vec<u8> {
        let mut module = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], []);
        types.ty().function([ValType::I32], []);
        module.section(&types);
        let mut imports = ImportSection::new();
        for (m, n) in &self.func_imports {
            imports.import(m, n, EntityType::Function(0));
        }
        for (i, mutable) in self.global_imports.iter().enumerate() {
            imports.import(
                "ic0",
                &format!("g{i}"),
                EntityType::Global(i32_global(*mutable)),
            );
        }
        if self.memory_import {
            imports.import("ic0", "mem", EntityType::Memory(memory_type()));
        }
        if !imports.is_empty() {
            module.section(&imports);
        }
        let mut functions = FunctionSection::new();
        for ty in &self.funcs {
            functions.function(*ty);
        }
        module.section(&functions);
        if self.table {
            let mut tables = TableSection::new();
            tables.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: 1,
                maximum: Some(1),
                shared: false,
            });
            module.section(&tables);
        }
        if self.memories > 0 {
            let mut memories = MemorySection::new();
            for _ in 0..self.memories {
                memories.memory(memory_type());
            }
            module.section(&memories);
        }
        if !self.globals.is_empty() {
            let mut globals = GlobalSection::new();
            for mutable in &self.globals {
                globals.global(i32_global(*mutable), &ConstExpr::i32_const(0));
            }
            module.section(&globals);
        }
        if let Some(list) = &self.exports {
            let mut exports = ExportSection::new();
            for (name, kind, index) in list {
                exports.export(name, *kind, *index);
            }
            module.section(&exports);
        }
        if let Some(function_index) = self.start {
            module.section(&StartSection { function_index });
        }
        if let Some((name, data)) = &self.custom_before_code {
            module.section(&CustomSection {
                name: Cow::Borrowed(name),
                data: Cow::Borrowed(data),
            });
        }
        let mut code = CodeSection::new();
        if let Some(body) = &self.raw_code_body {
            code.raw(body);
        } else {
            for _ in &self.funcs {
                let mut f = Function::new([]);
                f.instruction(&Instruction::End);
                code.function(&f);
            }
        }
        module.section(&code);
        module.finish()
    }
}

fn i32_global(mutable: bool) -> GlobalType {
    GlobalType {
        val_type: ValType::I32,
        mutable,
        shared: false,
    }
}

fn memory_type() -> MemoryType {
    MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    }
}

fn exports_of(wasm: &[u8]) -> Vec<(String, ExternalKind, u32)> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ExportSection(reader) = payload.unwrap() {
            for e in reader {
                let e = e.unwrap();
                out.push((e.name.to_string(), e.kind, e.index));
            }
        }
    }
    out
}

/// (id, contents) of every section, code entries folded into their section.
fn sections_of(wasm: &[u8]) -> Vec<(u8, Vec<u8>)> {
    Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| p.unwrap().as_section())
        .map(|(id, range)| (id, wasm[range].to_vec()))
        .collect()
}

/// Prepares `spec`, expecting success, and checks that the output validates.
fn ok(spec: &Spec) -> PreparedModule {
    let p = prepare(&spec.build()).expect("module is accepted");
    Validator::new_with_features(validation_features())
        .validate_all(&p.wasm)
        .expect("prepared module validates");
    p
}

fn err(spec: &Spec) -> ModuleError {
    prepare(&spec.build()).expect_err("module is rejected")
}

fn has(p: &PreparedModule, name: &str, kind: ExternalKind, index: u32) -> bool {
    exports_of(&p.wasm).contains(&(name.to_string(), kind, index))
}

fn names(p: &PreparedModule) -> Vec<String> {
    exports_of(&p.wasm).into_iter().map(|e| e.0).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

const FUNC: ExportKind = ExportKind::Func;
const F: ExternalKind = ExternalKind::Func;
const G: ExternalKind = ExternalKind::Global;
const T: ExternalKind = ExternalKind::Table;
const M: ExternalKind = ExternalKind::Memory;

#[test]
fn entry_points_are_classified_and_output_validates() {
    let p = ok(&Spec::new()
        .with(|s| s.funcs = vec![0; 10])
        .export("canister_update put", FUNC, 0)
        .export("canister_query get", FUNC, 1)
        .export("canister_composite_query cq", FUNC, 2)
        .export("canister_init", FUNC, 3)
        .export("canister_pre_upgrade", FUNC, 4)
        .export("canister_post_upgrade", FUNC, 5)
        .export("canister_global_timer", FUNC, 6)
        .export("canister_heartbeat", FUNC, 7)
        .export("canister_inspect_message", FUNC, 8)
        .export("canister_on_low_wasm_memory", FUNC, 9)
        .export("get_candid_pointer", FUNC, 0));
    assert_eq!(p.update_methods, set(&["put"]));
    assert_eq!(p.query_methods, set(&["get"]));
    assert_eq!(p.composite_query_methods, set(&["cq"]));
    assert!(p.has_init && p.has_pre_upgrade && p.has_post_upgrade && p.has_global_timer);
    assert!(p.has_heartbeat && p.has_inspect_message && p.has_on_low_wasm_memory);
    assert!(!p.has_start && p.mutable_global_exports.is_empty());
    assert!(has(&p, "memory", M, 0) && has(&p, "get_candid_pointer", F, 0));
}

#[test]
fn minimal_module_has_no_entry_points() {
    let p = ok(&Spec::new());
    assert!(p.update_methods.is_empty() && p.query_methods.is_empty());
    assert!(!p.has_init && !p.has_heartbeat && !p.has_start);
    assert_eq!(exports_of(&p.wasm), vec![("memory".into(), M, 0)]);
}

#[test]
fn gzip_input_is_accepted_and_hash_is_of_input_bytes() {
    let raw = Spec::new().func_export("canister_update put").build();
    let gz = gzip(&raw);
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 0x08]);
    let from_gz = prepare(&gz).unwrap();
    let from_raw = prepare(&raw).unwrap();
    assert_eq!(from_gz.module_hash, <[u8; 32]>::from(Sha256::digest(&gz)));
    assert_eq!(from_raw.module_hash, <[u8; 32]>::from(Sha256::digest(&raw)));
    assert_ne!(from_gz.module_hash, from_raw.module_hash);
    assert_eq!(from_gz.wasm, from_raw.wasm);
    assert!(from_gz.update_methods.contains("put"));
}

#[test]
fn unknown_format_and_bad_gzip_are_rejected() {
    let unknown = |bytes: &[u8]| matches!(prepare(bytes), Err(ModuleError::UnknownFormat(_)));
    assert!(unknown(b"hello world") && unknown(b""));
    // Gzip of something that is not wasm.
    assert!(unknown(&gzip(b"not wasm")));
    let mut bad = vec![0x1f, 0x8b, 0x08];
    bad.extend_from_slice(&[0xff; 32]);
    assert!(matches!(prepare(&bad), Err(ModuleError::Gzip(_))));
}

#[test]
fn invalid_wasm_is_rejected_with_validator_text() {
    let mut wasm = Spec::new().build();
    wasm.truncate(wasm.len() - 1);
    match prepare(&wasm) {
        Err(ModuleError::Invalid(text)) => assert!(!text.is_empty()),
        other => panic!("expected Invalid, got {other:?}"),
    }
    // Exporting a function that does not exist.
    let e = err(&Spec::new().export("f", FUNC, 7));
    assert!(matches!(e, ModuleError::Invalid(_)));
}

#[test]
fn size_limits_are_enforced() {
    let huge = vec![0u8; MAX_WASM_MODULE_BYTES + 1];
    let limit = MAX_WASM_MODULE_BYTES;
    let size = limit + 1;
    assert_eq!(
        prepare(&huge).unwrap_err(),
        ModuleError::TooLarge { size, limit }
    );
    // A gzip bomb: small input, too large once decompressed.
    let mut bomb = b"\0asm".to_vec();
    bomb.resize(MAX_WASM_MODULE_BYTES + 10, 0);
    let gz = gzip(&bomb);
    assert!(gz.len() < MAX_WASM_MODULE_BYTES);
    assert!(matches!(prepare(&gz), Err(ModuleError::TooLarge { .. })));
    // A code section just over the limit (checked before function bodies are validated).
    let mut body = vec![0x00]; // no locals
    body.resize(MAX_CODE_SECTION_BYTES, 0x01); // nops
    body.push(0x0b);
    let e = err(&Spec::new().with(|s| s.raw_code_body = Some(body)));
    let limit = MAX_CODE_SECTION_BYTES;
    assert!(matches!(e, ModuleError::CodeSectionTooLarge { limit: l, .. } if l == limit));
}

#[test]
fn imports_only_from_ic0() {
    ok(&Spec::new().with(|s| s.func_imports = vec![("ic0", "msg_reply"), ("ic0", "no_such")]));
    let bad = Spec::new().with(|s| s.func_imports = vec![("ic0", "msg_reply"), ("env", "foo")]);
    let (module, name) = ("env".to_string(), "foo".to_string());
    assert_eq!(err(&bad), ModuleError::ForbiddenImport { module, name });
}

#[test]
fn memory_must_be_defined_exactly_once() {
    let imported = Spec::new().with(|s| (s.memory_import, s.memories) = (true, 0));
    assert!(matches!(err(&imported), ModuleError::ImportedMemory { .. }));
    let none = Spec::new().with(|s| s.memories = 0);
    assert_eq!(err(&none), ModuleError::MissingMemory);
    let two = Spec::new().with(|s| s.memories = 2);
    assert_eq!(err(&two), ModuleError::TooManyMemories(2));
}

#[test]
fn memory_exported_under_another_name_gets_memory_alias() {
    let p = ok(&Spec::new().export("mem", ExportKind::Memory, 0));
    assert!(has(&p, "mem", M, 0) && has(&p, "memory", M, 0));
    let p = ok(&Spec::new().export("memory", ExportKind::Memory, 0));
    assert_eq!(names(&p), ["memory"]);
}

#[test]
fn reserved_export_name_used_for_another_item_is_rejected() {
    let spec = Spec::new().export("memory", FUNC, 0);
    assert_eq!(err(&spec), ModuleError::ReservedExportName("memory".into()));
    let spec = Spec::new()
        .with(|s| s.table = true)
        .export("table", FUNC, 0);
    assert_eq!(err(&spec), ModuleError::ReservedExportName("table".into()));
    let spec = Spec::new().with(|s| s.globals = vec![true]).export(
        "__persistent_mutable_global_0",
        FUNC,
        0,
    );
    let e = err(&spec);
    assert_eq!(
        e,
        ModuleError::ReservedExportName("__persistent_mutable_global_0".into())
    );
}

#[test]
fn unknown_canister_exports_are_rejected() {
    let unknown = [
        "canister_foo",
        "canister_update",
        "canister_start",
        "canister_init ",
        "canister_updates x",
    ];
    for name in unknown {
        let e = err(&Spec::new().func_export(name));
        assert_eq!(e, ModuleError::UnknownCanisterExport(name.into()), "{name}");
    }
}

#[test]
fn canister_exports_must_be_unit_functions() {
    let spec = Spec::new()
        .with(|s| s.funcs = vec![1])
        .func_export("canister_update put");
    assert_eq!(
        err(&spec),
        ModuleError::InvalidExportType("canister_update put".into())
    );
    let spec = Spec::new().with(|s| s.globals = vec![false]);
    let spec = spec.export("canister_init", ExportKind::Global, 0);
    assert_eq!(
        err(&spec),
        ModuleError::InvalidExportType("canister_init".into())
    );
}

#[test]
fn duplicate_method_names_are_rejected() {
    for (a, b) in [
        ("canister_update x", "canister_query x"),
        ("canister_query x", "canister_composite_query x"),
        ("canister_update x", "canister_composite_query x"),
    ] {
        let spec = Spec::new().with(|s| s.funcs = vec![0, 0]);
        let spec = spec.export(a, FUNC, 0).export(b, FUNC, 1);
        assert_eq!(err(&spec), ModuleError::DuplicateMethod("x".into()));
    }
}

#[test]
fn method_names_may_contain_spaces_and_brackets() {
    let p = ok(&Spec::new()
        .with(|s| s.funcs = vec![0, 0, 0])
        .export("canister_update <ic-cdk internal> timer_executor", FUNC, 0)
        .export("canister_query a b  c", FUNC, 1)
        .export("canister_update ", FUNC, 2));
    assert_eq!(
        p.update_methods,
        set(&["<ic-cdk internal> timer_executor", ""])
    );
    assert_eq!(p.query_methods, set(&["a b  c"]));
}

#[test]
fn mutable_globals_are_exported() {
    let p = ok(&Spec::new()
        .with(|s| s.globals = vec![true, false, true, true])
        .export("__stack_pointer", ExportKind::Global, 2)
        .export("__data_end", ExportKind::Global, 1));
    let expected = [
        "__persistent_mutable_global_0",
        "__stack_pointer",
        "__persistent_mutable_global_3",
    ];
    assert_eq!(p.mutable_global_exports, strings(&expected));
    assert!(has(&p, "__persistent_mutable_global_0", G, 0));
    assert!(has(&p, "__persistent_mutable_global_3", G, 3));
    let names = names(&p);
    assert!(!names.iter().any(|n| n.ends_with("_1") || n.ends_with("_2")));
    assert_eq!(names.len(), 5);
}

#[test]
fn imported_globals_shift_global_indices() {
    let p =
        ok(&Spec::new().with(|s| (s.global_imports, s.globals) = (vec![false, true], vec![true])));
    let expected = [
        "__persistent_mutable_global_1",
        "__persistent_mutable_global_2",
    ];
    assert_eq!(p.mutable_global_exports, strings(&expected));
    assert!(has(&p, "__persistent_mutable_global_1", G, 1));
    assert!(has(&p, "__persistent_mutable_global_2", G, 2));
}

#[test]
fn start_section_is_removed_and_exported_as_canister_start() {
    let spec = Spec::new().with(|s| {
        s.func_imports = vec![("ic0", "trap")];
        s.funcs = vec![0, 0];
        s.start = Some(2);
    });
    assert!(sections_of(&spec.build()).iter().any(|(id, _)| *id == 8));
    let p = ok(&spec);
    assert!(p.has_start);
    assert!(sections_of(&p.wasm).iter().all(|(id, _)| *id != 8));
    assert!(has(&p, "canister_start", F, 2));
}

#[test]
fn table_is_exported_as_table() {
    let with_table = || Spec::new().with(|s| s.table = true);
    let p = ok(&with_table());
    assert!(has(&p, "table", T, 0));
    let p = ok(&with_table().export("__indirect_function_table", ExportKind::Table, 0));
    assert!(has(&p, "table", T, 0) && has(&p, "__indirect_function_table", T, 0));
    let p = ok(&with_table().export("table", ExportKind::Table, 0));
    assert_eq!(names(&p).iter().filter(|n| *n == "table").count(), 1);
    // No table, no "table" export.
    assert!(!names(&ok(&Spec::new())).iter().any(|n| n == "table"));
}

#[test]
fn module_without_export_section_gets_one_in_order() {
    let spec = Spec::new().with(|s| {
        s.exports = None;
        s.globals = vec![true];
        s.table = true;
        s.start = Some(0);
        s.custom_before_code = Some(("name", vec![1, 2, 3]));
    });
    assert!(exports_of(&spec.build()).is_empty());
    let p = ok(&spec);
    let ids: Vec<u8> = sections_of(&p.wasm).iter().map(|s| s.0).collect();
    assert_eq!(ids, [1, 3, 4, 5, 6, 7, 0, 10]);
    let mut names = names(&p);
    names.sort();
    let expected = [
        "__persistent_mutable_global_0",
        "canister_start",
        "memory",
        "table",
    ];
    assert_eq!(names, expected);
    // A module whose only section is its memory.
    let mut module = Module::new();
    module.section(MemorySection::new().memory(memory_type()));
    let p = prepare(&module.finish()).unwrap();
    let ids: Vec<u8> = sections_of(&p.wasm).iter().map(|s| s.0).collect();
    assert_eq!(ids, [5, 7]);
}

#[test]
fn other_sections_are_copied_byte_for_byte() {
    let spec = Spec::new()
        .with(|s| {
            s.func_imports = vec![("ic0", "msg_reply")];
            s.global_imports = vec![false];
            s.globals = vec![true, false];
            s.funcs = vec![0, 1, 0];
            s.table = true;
            s.start = Some(3);
            s.custom_before_code = Some(("icp:public candid:service", b"service : {}".to_vec()));
        })
        .func_export("canister_update put")
        .export("get_candid_pointer", FUNC, 2);
    let input = spec.build();
    let p = ok(&spec);
    let kept = |wasm: &[u8]| -> Vec<(u8, Vec<u8>)> {
        let sections = sections_of(wasm).into_iter();
        sections.filter(|(id, _)| *id != 7 && *id != 8).collect()
    };
    assert_eq!(kept(&input), kept(&p.wasm));
    // Existing exports come first, unchanged and in order.
    let (before, after) = (exports_of(&input), exports_of(&p.wasm));
    assert_eq!(&after[..before.len()], &before[..]);
}

#[test]
fn custom_section_bytes_are_counted() {
    let p = ok(&Spec::new().with(|s| s.custom_before_code = Some(("abc", vec![0; 100]))));
    // One byte of name length, three of name, 100 of data.
    assert_eq!(p.custom_sections_bytes, 104);
    assert_eq!(ok(&Spec::new()).custom_sections_bytes, 0);
}

#[test]
fn errors_have_readable_messages() {
    let (module, name) = ("env".to_string(), "f".to_string());
    let e = ModuleError::ForbiddenImport { module, name };
    assert!(e.to_string().contains("\"env\".\"f\""));
    let e = ModuleError::DuplicateMethod("x".into());
    assert!(e.to_string().contains("\"x\""));
}
