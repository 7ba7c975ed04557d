//! The `ic0` host functions, registered on a wasmtime `Linker`.
//!
//! Every function is registered once per address width ([`Ptr`]): the spec's `I` (heap
//! addresses, lengths, callback table indices and environments) is `u32` for wasm32 modules
//! and `u64` for memory64 modules; the other parameters (`i32` codes, `i64` times, cycles
//! halves and stable-memory offsets) are the same in both. Cycles are 16-byte little-endian
//! `u128` written to the heap. Each function checks its context
//! first ([`Allowed`]), then its bounds, and traps with a message naming itself.

use candid::Principal;
use wasmtime::{Caller, Linker};

use super::{
    Allowed, ApiContext as Ctx, CanisterState, ExecState, HostTrap, PendingCall, Ptr, Response,
};
use crate::limits::MAX_PRINCIPAL_BYTES;
use crate::weights::{self, BYTE_TRANSMISSION_COST_FACTOR as SENT, Syscall};

mod calls;
mod cycles;

type C<'a> = Caller<'a, CanisterState>;
type R<T> = wasmtime::Result<T>;

const ARG: Allowed = Allowed::of(&[
    Ctx::Init,
    Ctx::Update,
    Ctx::ReplicatedQuery,
    Ctx::NonReplicatedQuery,
    Ctx::CompositeQuery,
    Ctx::ReplyCallback,
    Ctx::InspectMessage,
]);
const REJECT_CODE: Allowed = Allowed::of(&[Ctx::ReplyCallback, Ctx::RejectCallback]);
const REJECT_MSG: Allowed = Allowed::of(&[Ctx::RejectCallback]);
const RESPOND: Allowed = Allowed::of(&[
    Ctx::Update,
    Ctx::ReplicatedQuery,
    Ctx::NonReplicatedQuery,
    Ctx::CompositeQuery,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
]);
const CYCLES_IN: Allowed = Allowed::of(&[
    Ctx::Update,
    Ctx::ReplicatedQuery,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
]);
const REFUNDED: Allowed = Allowed::of(&[Ctx::ReplyCallback, Ctx::RejectCallback]);
const DEADLINE: Allowed = Allowed::of(&[
    Ctx::Update,
    Ctx::ReplicatedQuery,
    Ctx::NonReplicatedQuery,
    Ctx::CompositeQuery,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
]);
const INSPECT: Allowed = Allowed::of(&[Ctx::InspectMessage]);
const CALL: Allowed = Allowed::of(&[
    Ctx::Update,
    Ctx::CompositeQuery,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
    Ctx::SystemTask,
]);
const CALL_CYCLES: Allowed = Allowed::of(&[
    Ctx::Update,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
    Ctx::SystemTask,
]);
const TIMER_AND_BURN: Allowed = Allowed::of(&[
    Ctx::Init,
    Ctx::PreUpgrade,
    Ctx::Update,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
    Ctx::Cleanup,
    Ctx::SystemTask,
]);
const BURN: Allowed = Allowed::of(&[
    Ctx::Init,
    Ctx::PreUpgrade,
    Ctx::Update,
    Ctx::ReplicatedQuery,
    Ctx::ReplyCallback,
    Ctx::RejectCallback,
    Ctx::Cleanup,
    Ctx::SystemTask,
]);
const CERTIFICATE: Allowed = Allowed::of(&[Ctx::NonReplicatedQuery, Ctx::CompositeQuery]);

fn trap<T>(t: HostTrap) -> R<T> {
    Err(wasmtime::Error::new(t))
}

fn violation<T>(msg: String) -> R<T> {
    trap(HostTrap::ContractViolation(msg))
}

/// The execution state, after checking the context.
fn exec<'a>(c: &'a mut C<'_>, name: &str, allowed: Allowed) -> R<&'a mut ExecState> {
    let Some(state) = c.data_mut().exec.as_mut() else {
        return violation(format!("ic0.{name} called outside of a message execution"));
    };
    state.check(name, allowed).map_err(wasmtime::Error::new)?;
    Ok(state)
}

/// Charges a System API call its replica cost ([`weights::syscall_cost`]: the fixed overhead
/// plus `bytes`, already weighted), first thing in the call as the replica does.
fn charge(c: &mut C<'_>, call: Syscall, bytes: u64) -> R<()> {
    consume(c, weights::syscall_cost(call, bytes))
}

/// Takes `cost` instructions, and the growth surcharge owed so far, from the budget; traps
/// with IC0522 when it cannot cover them.
fn consume(c: &mut C<'_>, cost: u64) -> R<()> {
    let owed = std::mem::take(&mut c.data_mut().heap_limit.grow_surcharge);
    let cost = cost.saturating_add(owed);
    let fuel = c.get_fuel()?;
    if fuel < cost {
        c.set_fuel(0)?;
        return trap(HostTrap::OutOfInstructions);
    }
    c.set_fuel(fuel - cost)
}

fn memory(c: &C<'_>) -> R<wasmtime::Memory> {
    match c.data().memory {
        Some(m) => Ok(m),
        None => violation("the module exports no memory".into()),
    }
}

fn heap_range(heap_len: usize, ptr: u64, size: u64, name: &str) -> R<std::ops::Range<usize>> {
    match ptr.checked_add(size) {
        Some(end) if end <= heap_len as u64 => Ok(ptr as usize..end as usize),
        _ => violation(format!(
            "ic0.{name}: heap range {ptr}+{size} is out of bounds (heap is {heap_len} bytes)"
        )),
    }
}

fn read_heap(c: &mut C<'_>, ptr: impl Ptr, size: impl Ptr, name: &str) -> R<Vec<u8>> {
    let mem = memory(c)?;
    let heap = mem.data(&*c);
    let range = heap_range(heap.len(), ptr.get(), size.get(), name)?;
    Ok(heap[range].to_vec())
}

fn write_heap(c: &mut C<'_>, dst: impl Ptr, bytes: &[u8], name: &str) -> R<()> {
    let mem = memory(c)?;
    let heap = mem.data_mut(&mut *c);
    let range = heap_range(heap.len(), dst.get(), bytes.len() as u64, name)?;
    heap[range].copy_from_slice(bytes);
    Ok(())
}

/// The `*_copy(dst, offset, size)` pattern: copies `src[offset..offset+size]` to the heap.
fn copy_out<P: Ptr>(c: &mut C<'_>, src: &[u8], dst: P, offset: P, size: P, name: &str) -> R<()> {
    let (offset, size) = (offset.get(), size.get());
    let end = offset.saturating_add(size);
    if end > src.len() as u64 {
        return violation(format!(
            "ic0.{name}: offset {offset} + size {size} exceeds the {} available bytes",
            src.len()
        ));
    }
    write_heap(c, dst, &src[offset as usize..end as usize], name)
}

fn write_u128(c: &mut C<'_>, dst: impl Ptr, value: u128, name: &str) -> R<()> {
    write_heap(c, dst, &value.to_le_bytes(), name)
}

fn amount(high: u64, low: u64) -> u128 {
    (u128::from(high) << 64) | u128::from(low)
}

fn principal(bytes: &[u8], name: &str) -> R<Principal> {
    if bytes.len() > MAX_PRINCIPAL_BYTES {
        return violation(format!(
            "ic0.{name}: {} bytes is not a valid principal (at most {MAX_PRINCIPAL_BYTES})",
            bytes.len()
        ));
    }
    Ok(Principal::from_slice(bytes))
}

fn pending<'a>(state: &'a mut ExecState, name: &str) -> R<&'a mut PendingCall> {
    match state.pending_call.as_mut() {
        Some(p) => Ok(p),
        None => violation(format!("ic0.{name} called with no call under construction")),
    }
}

/// Registers every supported `ic0` function on `linker`.
pub(crate) fn register<P: Ptr>(linker: &mut Linker<CanisterState>) -> R<()> {
    register_message::<P>(linker)?;
    cycles::register_cycles::<P>(linker)?;
    register_canister::<P>(linker)?;
    calls::register_calls::<P>(linker)?;
    calls::register_stable(linker)?;
    register_misc::<P>(linker)?;
    Ok(())
}

macro_rules! blob_accessors {
    ($linker:ident, $size:literal, $copy:literal, $allowed:expr, |$s:ident| $blob:expr) => {
        $linker.func_wrap("ic0", $size, |mut c: C<'_>| -> R<P> {
            charge(&mut c, Syscall::Standard, 0)?;
            let $s = exec(&mut c, $size, $allowed)?;
            Ok(P::of_len($blob.len()))
        })?;
        $linker.func_wrap(
            "ic0",
            $copy,
            |mut c: C<'_>, dst: P, off: P, size: P| -> R<()> {
                charge(&mut c, Syscall::Standard, size.get())?;
                let $s = exec(&mut c, $copy, $allowed)?;
                let blob: Vec<u8> = $blob.to_vec();
                copy_out(&mut c, &blob, dst, off, size, $copy)
            },
        )?;
    };
}

fn register_message<P: Ptr>(linker: &mut Linker<CanisterState>) -> R<()> {
    blob_accessors!(linker, "msg_arg_data_size", "msg_arg_data_copy", ARG, |s| s
        .arg);
    blob_accessors!(
        linker,
        "msg_caller_size",
        "msg_caller_copy",
        Allowed::STAR,
        |s| s.caller.as_slice()
    );
    blob_accessors!(
        linker,
        "msg_caller_info_data_size",
        "msg_caller_info_data_copy",
        Allowed::STAR,
        |s| {
            let _ = s;
            &[] as &[u8]
        }
    );
    blob_accessors!(
        linker,
        "msg_caller_info_signer_size",
        "msg_caller_info_signer_copy",
        Allowed::STAR,
        |s| {
            let _ = s;
            &[] as &[u8]
        }
    );
    blob_accessors!(
        linker,
        "msg_method_name_size",
        "msg_method_name_copy",
        INSPECT,
        |s| s.method_name.as_bytes()
    );
    linker.func_wrap("ic0", "msg_reject_code", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, Syscall::Standard, 0)?;
        let s = exec(&mut c, "msg_reject_code", REJECT_CODE)?;
        Ok(s.reject.as_ref().map_or(0, |(code, _)| code.as_u32()))
    })?;
    linker.func_wrap("ic0", "msg_reject_msg_size", |mut c: C<'_>| -> R<P> {
        charge(&mut c, Syscall::Standard, 0)?;
        let s = exec(&mut c, "msg_reject_msg_size", REJECT_MSG)?;
        Ok(P::of_len(s.reject.as_ref().map_or(0, |(_, m)| m.len())))
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reject_msg_copy",
        |mut c: C<'_>, dst: P, off: P, size: P| -> R<()> {
            charge(&mut c, Syscall::Standard, size.get())?;
            let s = exec(&mut c, "msg_reject_msg_copy", REJECT_MSG)?;
            let msg = s
                .reject
                .as_ref()
                .map(|(_, m)| m.clone().into_bytes())
                .unwrap_or_default();
            copy_out(&mut c, &msg, dst, off, size, "msg_reject_msg_copy")
        },
    )?;
    linker.func_wrap("ic0", "msg_deadline", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, Syscall::Standard, 0)?;
        Ok(exec(&mut c, "msg_deadline", DEADLINE)?.deadline)
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reply_data_append",
        |mut c: C<'_>, src: P, size: P| -> R<()> {
            charge(&mut c, Syscall::Standard, SENT.saturating_mul(size.get()))?;
            exec(&mut c, "msg_reply_data_append", RESPOND)?;
            let bytes = read_heap(&mut c, src, size, "msg_reply_data_append")?;
            let s = exec(&mut c, "msg_reply_data_append", RESPOND)?;
            ensure_can_respond(s, "msg_reply_data_append")?;
            if s.reply_data.len() + bytes.len() > s.max_response_bytes() {
                return violation(format!(
                    "ic0.msg_reply_data_append: the reply exceeds the maximum response size of {} bytes",
                    s.max_response_bytes()
                ));
            }
            s.reply_data.extend_from_slice(&bytes);
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "msg_reply", |mut c: C<'_>| -> R<()> {
        charge(&mut c, Syscall::Standard, 0)?;
        let s = exec(&mut c, "msg_reply", RESPOND)?;
        ensure_can_respond(s, "msg_reply")?;
        s.response = Some(Response::Reply(std::mem::take(&mut s.reply_data)));
        s.can_respond = false;
        Ok(())
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reject",
        |mut c: C<'_>, src: P, size: P| -> R<()> {
            charge(&mut c, Syscall::Standard, SENT.saturating_mul(size.get()))?;
            exec(&mut c, "msg_reject", RESPOND)?;
            let bytes = read_heap(&mut c, src, size, "msg_reject")?;
            let s = exec(&mut c, "msg_reject", RESPOND)?;
            ensure_can_respond(s, "msg_reject")?;
            let Ok(text) = String::from_utf8(bytes) else {
                return violation("ic0.msg_reject: the message is not valid UTF-8".into());
            };
            s.response = Some(Response::Reject(text));
            s.can_respond = false;
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "accept_message", |mut c: C<'_>| -> R<()> {
        charge(&mut c, Syscall::Standard, 0)?;
        let s = exec(&mut c, "accept_message", INSPECT)?;
        if s.message_accepted {
            return violation("ic0.accept_message called twice".into());
        }
        s.message_accepted = true;
        Ok(())
    })?;
    Ok(())
}

fn ensure_can_respond(s: &ExecState, name: &str) -> R<()> {
    if s.can_respond {
        Ok(())
    } else if s.response.is_some() {
        violation(format!(
            "ic0.{name}: the call was already replied to or rejected"
        ))
    } else {
        violation(format!(
            "ic0.{name}: this call context needs no response (it was answered earlier or was started by the system)"
        ))
    }
}

fn register_canister<P: Ptr>(linker: &mut Linker<CanisterState>) -> R<()> {
    blob_accessors!(
        linker,
        "canister_self_size",
        "canister_self_copy",
        Allowed::STAR,
        |s| s.self_id.as_slice()
    );
    blob_accessors!(
        linker,
        "subnet_self_size",
        "subnet_self_copy",
        Allowed::STAR,
        |s| s.subnet_id.as_slice()
    );
    linker.func_wrap("ic0", "subnet_self_node_count", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, Syscall::Standard, 0)?;
        exec(&mut c, "subnet_self_node_count", Allowed::STAR)?;
        Ok(13)
    })?;
    linker.func_wrap("ic0", "canister_status", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, Syscall::Standard, 0)?;
        Ok(exec(&mut c, "canister_status", Allowed::STAR)?.status)
    })?;
    linker.func_wrap("ic0", "canister_version", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, Syscall::Standard, 0)?;
        Ok(exec(&mut c, "canister_version", Allowed::STAR)?.version)
    })?;
    linker.func_wrap("ic0", "time", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, Syscall::Standard, 0)?;
        Ok(exec(&mut c, "time", Allowed::STAR)?.time)
    })?;
    linker.func_wrap(
        "ic0",
        "global_timer_set",
        |mut c: C<'_>, at: u64| -> R<u64> {
            charge(&mut c, Syscall::Standard, 0)?;
            let s = exec(&mut c, "global_timer_set", TIMER_AND_BURN)?;
            let previous = s.new_timer.unwrap_or(s.timer_at_start);
            s.new_timer = Some(at);
            Ok(previous)
        },
    )?;
    linker.func_wrap(
        "ic0",
        "performance_counter",
        |mut c: C<'_>, kind: u32| -> R<u64> {
            // Charged before the counter is read: the value includes this call.
            charge(&mut c, Syscall::PerformanceCounter, 0)?;
            let fuel = c.get_fuel()?;
            let s = exec(&mut c, "performance_counter", Allowed::ANY)?;
            let this_execution = s.instruction_limit.saturating_sub(fuel);
            match kind {
                0 => Ok(this_execution),
                1 => Ok(s.context_instructions_before + this_execution),
                other => violation(format!(
                    "ic0.performance_counter: unknown counter type {other}"
                )),
            }
        },
    )?;
    linker.func_wrap(
        "ic0",
        "is_controller",
        |mut c: C<'_>, src: P, size: P| -> R<u32> {
            charge(&mut c, Syscall::IsController, size.get())?;
            exec(&mut c, "is_controller", Allowed::ANY)?;
            let bytes = read_heap(&mut c, src, size, "is_controller")?;
            let p = principal(&bytes, "is_controller")?;
            let s = exec(&mut c, "is_controller", Allowed::ANY)?;
            Ok(u32::from(s.controllers.contains(&p)))
        },
    )?;
    linker.func_wrap("ic0", "in_replicated_execution", |mut c: C<'_>| -> R<u32> {
        charge(&mut c, Syscall::Standard, 0)?;
        let s = exec(&mut c, "in_replicated_execution", Allowed::ANY)?;
        Ok(u32::from(!matches!(
            s.context,
            Ctx::NonReplicatedQuery | Ctx::CompositeQuery
        )))
    })?;
    linker.func_wrap(
        "ic0",
        "certified_data_set",
        |mut c: C<'_>, src: P, size: P| -> R<()> {
            charge(&mut c, Syscall::Standard, size.get())?;
            exec(&mut c, "certified_data_set", TIMER_AND_BURN)?;
            if size.get() > 32 {
                return violation(format!("ic0.certified_data_set: {size} bytes exceeds 32"));
            }
            let bytes = read_heap(&mut c, src, size, "certified_data_set")?;
            exec(&mut c, "certified_data_set", TIMER_AND_BURN)?.certified_data = Some(bytes);
            Ok(())
        },
    )?;
    linker.func_wrap(
        "ic0",
        "data_certificate_present",
        |mut c: C<'_>| -> R<u32> {
            charge(&mut c, Syscall::Standard, 0)?;
            exec(&mut c, "data_certificate_present", Allowed::STAR)?;
            Ok(0)
        },
    )?;
    blob_accessors!(
        linker,
        "data_certificate_size",
        "data_certificate_copy",
        CERTIFICATE,
        |s| {
            let _ = s;
            &[] as &[u8]
        }
    );
    blob_accessors!(
        linker,
        "root_key_size",
        "root_key_copy",
        Allowed::STAR,
        |s| {
            let _ = s;
            &[] as &[u8]
        }
    );
    linker.func_wrap("ic0", "env_var_count", |mut c: C<'_>| -> R<P> {
        charge(&mut c, Syscall::Standard, 0)?;
        exec(&mut c, "env_var_count", Allowed::STAR)?;
        Ok(P::of_len(0))
    })?;
    Ok(())
}

fn register_misc<P: Ptr>(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap(
        "ic0",
        "debug_print",
        |mut c: C<'_>, src: P, size: P| -> R<()> {
            charge(
                &mut c,
                Syscall::DebugPrint,
                weights::logging_bytes(size.get()),
            )?;
            exec(&mut c, "debug_print", Allowed::ANY)?;
            let bytes = read_heap(&mut c, src, size, "debug_print")?;
            let line = String::from_utf8_lossy(&bytes).into_owned();
            if std::env::var_os("IC_HARNESS_LOG").is_some() {
                let id = c
                    .data()
                    .exec
                    .as_ref()
                    .map(|s| s.self_id.to_text())
                    .unwrap_or_default();
                eprintln!("[{id}] {line}");
            }
            c.data_mut().logs.push(line);
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "trap", |mut c: C<'_>, src: P, size: P| -> R<()> {
        let len = size.get();
        charge(
            &mut c,
            Syscall::Standard,
            len.saturating_add(weights::logging_bytes(len)),
        )?;
        exec(&mut c, "trap", Allowed::ANY)?;
        let bytes = read_heap(&mut c, src, size, "trap")?;
        trap(HostTrap::Explicit(
            String::from_utf8_lossy(&bytes).into_owned(),
        ))
    })?;
    Ok(())
}
