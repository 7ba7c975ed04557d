//! The `ic0` host functions, registered on a wasmtime `Linker`.
//!
//! Signatures are the wasm32 ones: `usize` is `u32`, 64-bit values are `u64`, cycles are
//! 16-byte little-endian `u128` written to the heap. Each function checks its context
//! first ([`Allowed`]), then its bounds, and traps with a message naming itself.

use candid::Principal;
use wasmtime::{Caller, Linker};

use super::{
    Allowed, ApiContext as Ctx, CanisterState, ExecState, HostTrap, PendingCall, Response,
};
use crate::limits::{MAX_CALL_TIMEOUT_SECONDS, MAX_PRINCIPAL_BYTES, MAX_QUEUE_PER_PAIR};
use crate::stable_memory::MAX_STABLE_PAGES;

type C<'a> = Caller<'a, CanisterState>;
type R<T> = wasmtime::Result<T>;

/// Fixed instruction charge of a System API call, plus one instruction per byte copied.
const SYSCALL_BASE_INSTRUCTIONS: u64 = 20;

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

fn charge(c: &mut C<'_>, bytes: u64) -> R<()> {
    let cost = SYSCALL_BASE_INSTRUCTIONS + bytes;
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

fn read_heap(c: &mut C<'_>, ptr: u32, size: u32, name: &str) -> R<Vec<u8>> {
    charge(c, u64::from(size))?;
    let mem = memory(c)?;
    let heap = mem.data(&*c);
    let range = heap_range(heap.len(), u64::from(ptr), u64::from(size), name)?;
    Ok(heap[range].to_vec())
}

fn write_heap(c: &mut C<'_>, dst: u32, bytes: &[u8], name: &str) -> R<()> {
    let mem = memory(c)?;
    let heap = mem.data_mut(&mut *c);
    let range = heap_range(heap.len(), u64::from(dst), bytes.len() as u64, name)?;
    heap[range].copy_from_slice(bytes);
    Ok(())
}

/// The `*_copy(dst, offset, size)` pattern: copies `src[offset..offset+size]` to the heap.
fn copy_out(c: &mut C<'_>, src: &[u8], dst: u32, offset: u32, size: u32, name: &str) -> R<()> {
    charge(c, u64::from(size))?;
    let end = u64::from(offset) + u64::from(size);
    if end > src.len() as u64 {
        return violation(format!(
            "ic0.{name}: offset {offset} + size {size} exceeds the {} available bytes",
            src.len()
        ));
    }
    write_heap(c, dst, &src[offset as usize..end as usize], name)
}

fn write_u128(c: &mut C<'_>, dst: u32, value: u128, name: &str) -> R<()> {
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
pub(crate) fn register(linker: &mut Linker<CanisterState>) -> R<()> {
    register_message(linker)?;
    register_cycles(linker)?;
    register_canister(linker)?;
    register_calls(linker)?;
    register_stable(linker)?;
    register_misc(linker)?;
    Ok(())
}

macro_rules! blob_accessors {
    ($linker:ident, $size:literal, $copy:literal, $allowed:expr, |$s:ident| $blob:expr) => {
        $linker.func_wrap("ic0", $size, |mut c: C<'_>| -> R<u32> {
            let $s = exec(&mut c, $size, $allowed)?;
            Ok($blob.len() as u32)
        })?;
        $linker.func_wrap(
            "ic0",
            $copy,
            |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
                let $s = exec(&mut c, $copy, $allowed)?;
                let blob: Vec<u8> = $blob.to_vec();
                copy_out(&mut c, &blob, dst, off, size, $copy)
            },
        )?;
    };
}

fn register_message(linker: &mut Linker<CanisterState>) -> R<()> {
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
        let s = exec(&mut c, "msg_reject_code", REJECT_CODE)?;
        Ok(s.reject.as_ref().map_or(0, |(code, _)| code.as_u32()))
    })?;
    linker.func_wrap("ic0", "msg_reject_msg_size", |mut c: C<'_>| -> R<u32> {
        let s = exec(&mut c, "msg_reject_msg_size", REJECT_MSG)?;
        Ok(s.reject.as_ref().map_or(0, |(_, m)| m.len() as u32))
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reject_msg_copy",
        |mut c: C<'_>, dst: u32, off: u32, size: u32| -> R<()> {
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
        Ok(exec(&mut c, "msg_deadline", DEADLINE)?.deadline)
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reply_data_append",
        |mut c: C<'_>, src: u32, size: u32| -> R<()> {
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
        let s = exec(&mut c, "msg_reply", RESPOND)?;
        ensure_can_respond(s, "msg_reply")?;
        s.response = Some(Response::Reply(std::mem::take(&mut s.reply_data)));
        s.can_respond = false;
        Ok(())
    })?;
    linker.func_wrap(
        "ic0",
        "msg_reject",
        |mut c: C<'_>, src: u32, size: u32| -> R<()> {
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

fn register_cycles(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap(
        "ic0",
        "msg_cycles_available128",
        |mut c: C<'_>, dst: u32| -> R<()> {
            let v = exec(&mut c, "msg_cycles_available128", CYCLES_IN)?.cycles_available;
            write_u128(&mut c, dst, v, "msg_cycles_available128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "msg_cycles_refunded128",
        |mut c: C<'_>, dst: u32| -> R<()> {
            let v = exec(&mut c, "msg_cycles_refunded128", REFUNDED)?.cycles_refunded;
            write_u128(&mut c, dst, v, "msg_cycles_refunded128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "msg_cycles_accept128",
        |mut c: C<'_>, high: u64, low: u64, dst: u32| -> R<()> {
            let s = exec(&mut c, "msg_cycles_accept128", CYCLES_IN)?;
            let taken = amount(high, low).min(s.cycles_available);
            s.cycles_available -= taken;
            s.accepted += taken;
            s.balance += taken;
            write_u128(&mut c, dst, taken, "msg_cycles_accept128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "cycles_burn128",
        |mut c: C<'_>, high: u64, low: u64, dst: u32| -> R<()> {
            let s = exec(&mut c, "cycles_burn128", BURN)?;
            let burned = amount(high, low).min(s.liquid_balance());
            s.balance -= burned;
            s.burned += burned;
            write_u128(&mut c, dst, burned, "cycles_burn128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "canister_cycle_balance128",
        |mut c: C<'_>, dst: u32| -> R<()> {
            let v = exec(&mut c, "canister_cycle_balance128", Allowed::STAR)?.balance;
            write_u128(&mut c, dst, v, "canister_cycle_balance128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "canister_liquid_cycle_balance128",
        |mut c: C<'_>, dst: u32| -> R<()> {
            let v =
                exec(&mut c, "canister_liquid_cycle_balance128", Allowed::STAR)?.liquid_balance();
            write_u128(&mut c, dst, v, "canister_liquid_cycle_balance128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "cost_call",
        |mut c: C<'_>, name_len: u64, payload_len: u64, dst: u32| -> R<()> {
            let s = exec(&mut c, "cost_call", Allowed::ANY)?;
            let cost = s.fees.cost_call(name_len, payload_len);
            write_u128(&mut c, dst, cost, "cost_call")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "cost_create_canister",
        |mut c: C<'_>, dst: u32| -> R<()> {
            let cost = exec(&mut c, "cost_create_canister", Allowed::ANY)?
                .fees
                .canister_creation;
            write_u128(&mut c, dst, cost, "cost_create_canister")
        },
    )?;
    Ok(())
}

fn register_canister(linker: &mut Linker<CanisterState>) -> R<()> {
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
        exec(&mut c, "subnet_self_node_count", Allowed::STAR)?;
        Ok(13)
    })?;
    linker.func_wrap("ic0", "canister_status", |mut c: C<'_>| -> R<u32> {
        Ok(exec(&mut c, "canister_status", Allowed::STAR)?.status)
    })?;
    linker.func_wrap("ic0", "canister_version", |mut c: C<'_>| -> R<u64> {
        Ok(exec(&mut c, "canister_version", Allowed::STAR)?.version)
    })?;
    linker.func_wrap("ic0", "time", |mut c: C<'_>| -> R<u64> {
        Ok(exec(&mut c, "time", Allowed::STAR)?.time)
    })?;
    linker.func_wrap(
        "ic0",
        "global_timer_set",
        |mut c: C<'_>, at: u64| -> R<u64> {
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
        |mut c: C<'_>, src: u32, size: u32| -> R<u32> {
            exec(&mut c, "is_controller", Allowed::ANY)?;
            let bytes = read_heap(&mut c, src, size, "is_controller")?;
            let p = principal(&bytes, "is_controller")?;
            let s = exec(&mut c, "is_controller", Allowed::ANY)?;
            Ok(u32::from(s.controllers.contains(&p)))
        },
    )?;
    linker.func_wrap("ic0", "in_replicated_execution", |mut c: C<'_>| -> R<u32> {
        let s = exec(&mut c, "in_replicated_execution", Allowed::ANY)?;
        Ok(u32::from(!matches!(
            s.context,
            Ctx::NonReplicatedQuery | Ctx::CompositeQuery
        )))
    })?;
    linker.func_wrap(
        "ic0",
        "certified_data_set",
        |mut c: C<'_>, src: u32, size: u32| -> R<()> {
            exec(&mut c, "certified_data_set", TIMER_AND_BURN)?;
            if size > 32 {
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
    linker.func_wrap("ic0", "env_var_count", |mut c: C<'_>| -> R<u32> {
        exec(&mut c, "env_var_count", Allowed::STAR)?;
        Ok(0)
    })?;
    Ok(())
}

fn register_calls(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap(
        "ic0",
        "call_new",
        |mut c: C<'_>,
         callee_src: u32,
         callee_size: u32,
         name_src: u32,
         name_size: u32,
         reply_fun: u32,
         reply_env: u32,
         reject_fun: u32,
         reject_env: u32|
         -> R<()> {
            exec(&mut c, "call_new", CALL)?;
            let callee = read_heap(&mut c, callee_src, callee_size, "call_new")?;
            let callee = principal(&callee, "call_new")?;
            let name = read_heap(&mut c, name_src, name_size, "call_new")?;
            let Ok(method) = String::from_utf8(name) else {
                return violation("ic0.call_new: the method name is not valid UTF-8".into());
            };
            let s = exec(&mut c, "call_new", CALL)?;
            if let Some(discarded) = s.pending_call.take() {
                s.balance += discarded.cycles;
            }
            s.pending_call = Some(PendingCall {
                callee,
                method,
                on_reply: (reply_fun, reply_env),
                on_reject: (reject_fun, reject_env),
                on_cleanup: None,
                payload: Vec::new(),
                cycles: 0,
                timeout_seconds: None,
            });
            Ok(())
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_on_cleanup",
        |mut c: C<'_>, fun: u32, env: u32| -> R<()> {
            let s = exec(&mut c, "call_on_cleanup", CALL)?;
            let p = pending(s, "call_on_cleanup")?;
            if p.on_cleanup.is_some() {
                return violation("ic0.call_on_cleanup called twice for one call".into());
            }
            p.on_cleanup = Some((fun, env));
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "call_data_append", |mut c: C<'_>, src: u32, size: u32| -> R<()> {
        pending(exec(&mut c, "call_data_append", CALL)?, "call_data_append")?;
        let bytes = read_heap(&mut c, src, size, "call_data_append")?;
        let s = exec(&mut c, "call_data_append", CALL)?;
        let callee = pending(s, "call_data_append")?.callee;
        let limit = s.max_request_bytes(&callee);
        let p = pending(s, "call_data_append")?;
        if p.payload.len() + bytes.len() > limit {
            return violation(format!(
                "ic0.call_data_append: the payload to {callee} exceeds the {limit}-byte request limit"
            ));
        }
        p.payload.extend_from_slice(&bytes);
        Ok(())
    })?;
    linker.func_wrap(
        "ic0",
        "call_with_best_effort_response",
        |mut c: C<'_>, timeout: u32| -> R<()> {
            let s = exec(&mut c, "call_with_best_effort_response", CALL)?;
            let p = pending(s, "call_with_best_effort_response")?;
            if p.timeout_seconds.is_some() {
                return violation(
                    "ic0.call_with_best_effort_response called twice for one call".into(),
                );
            }
            p.timeout_seconds = Some(timeout.min(MAX_CALL_TIMEOUT_SECONDS));
            Ok(())
        },
    )?;
    linker.func_wrap(
        "ic0",
        "call_cycles_add128",
        |mut c: C<'_>, high: u64, low: u64| -> R<()> {
            let s = exec(&mut c, "call_cycles_add128", CALL_CYCLES)?;
            let add = amount(high, low);
            if add > s.liquid_balance() {
                return violation(format!(
                    "ic0.call_cycles_add128: {add} cycles exceed the liquid balance of {}",
                    s.liquid_balance()
                ));
            }
            pending(s, "call_cycles_add128")?;
            s.balance -= add;
            pending(s, "call_cycles_add128")?.cycles += add;
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "call_perform", |mut c: C<'_>| -> R<u32> {
        let s = exec(&mut c, "call_perform", CALL)?;
        let Some(call) = s.pending_call.take() else {
            return violation("ic0.call_perform called with no call under construction".into());
        };
        // SYS_TRANSIENT, with the attached cycles back and nothing sent, when no callback
        // is available (subnet pool and canister quota exhausted), the pair's queue is
        // full, or the call's cost would dip into the freezing reserve.
        if s.calls.len() >= s.available_callbacks {
            s.balance += call.cycles;
            return Ok(2);
        }
        let queued = s.outstanding_calls.get(&call.callee).copied().unwrap_or(0)
            + s.calls.iter().filter(|p| p.callee == call.callee).count();
        let cost = s
            .fees
            .cost_call(call.method.len() as u64, call.payload.len() as u64);
        if queued >= MAX_QUEUE_PER_PAIR || s.liquid_balance() < cost {
            s.balance += call.cycles;
            return Ok(2);
        }
        s.balance -= cost;
        s.calls.push(call);
        Ok(0)
    })?;
    Ok(())
}

fn register_stable(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap("ic0", "stable64_size", |mut c: C<'_>| -> R<u64> {
        exec(&mut c, "stable64_size", Allowed::ANY)?;
        Ok(c.data().stable.size_pages())
    })?;
    linker.func_wrap(
        "ic0",
        "stable64_grow",
        |mut c: C<'_>, pages: u64| -> R<u64> {
            exec(&mut c, "stable64_grow", Allowed::ANY)?;
            charge(&mut c, 0)?;
            Ok(c.data_mut()
                .stable
                .grow(pages, MAX_STABLE_PAGES)
                .unwrap_or(u64::MAX))
        },
    )?;
    linker.func_wrap(
        "ic0",
        "stable64_write",
        |mut c: C<'_>, offset: u64, src: u64, size: u64| -> R<()> {
            exec(&mut c, "stable64_write", Allowed::ANY)?;
            charge(&mut c, size)?;
            let mem = memory(&c)?;
            let (heap, state) = mem.data_and_store_mut(&mut c);
            let range = heap_range(heap.len(), src, size, "stable64_write")?;
            state
                .stable
                .write(offset, &heap[range])
                .or_else(|e| violation(format!("ic0.stable64_write: {e}")))
        },
    )?;
    linker.func_wrap(
        "ic0",
        "stable64_read",
        |mut c: C<'_>, dst: u64, offset: u64, size: u64| -> R<()> {
            exec(&mut c, "stable64_read", Allowed::ANY)?;
            charge(&mut c, size)?;
            let mem = memory(&c)?;
            let (heap, state) = mem.data_and_store_mut(&mut c);
            let range = heap_range(heap.len(), dst, size, "stable64_read")?;
            state
                .stable
                .read(offset, &mut heap[range])
                .or_else(|e| violation(format!("ic0.stable64_read: {e}")))
        },
    )?;
    Ok(())
}

fn register_misc(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap(
        "ic0",
        "debug_print",
        |mut c: C<'_>, src: u32, size: u32| -> R<()> {
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
    linker.func_wrap(
        "ic0",
        "trap",
        |mut c: C<'_>, src: u32, size: u32| -> R<()> {
            exec(&mut c, "trap", Allowed::ANY)?;
            let bytes = read_heap(&mut c, src, size, "trap")?;
            trap(HostTrap::Explicit(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        },
    )?;
    Ok(())
}
