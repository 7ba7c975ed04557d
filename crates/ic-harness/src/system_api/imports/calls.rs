//! The call-building (`call_*`) and stable-memory (`stable64_*`) `ic0` functions.

use wasmtime::Linker;

use super::{
    C, CALL, CALL_CYCLES, CanisterState, PendingCall, Ptr, R, amount, charge, consume, exec,
    heap_range, memory, pending, principal, read_heap, violation,
};
use crate::limits::{MAX_CALL_TIMEOUT_SECONDS, MAX_QUEUE_PER_PAIR};
use crate::stable_memory::MAX_STABLE_PAGES;
use crate::system_api::{Allowed, HostTrap};
use crate::weights::{BYTE_TRANSMISSION_COST_FACTOR as SENT, DIRTY_PAGE_OVERHEAD, Syscall};

pub(super) fn register_calls<P: Ptr>(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap(
        "ic0",
        "call_new",
        |mut c: C<'_>,
         callee_src: P,
         callee_size: P,
         name_src: P,
         name_size: P,
         reply_fun: P,
         reply_env: P,
         reject_fun: P,
         reject_env: P|
         -> R<()> {
            charge(
                &mut c,
                Syscall::CallNew,
                callee_size.get().saturating_add(name_size.get()),
            )?;
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
                on_reply: (reply_fun.get(), reply_env.get()),
                on_reject: (reject_fun.get(), reject_env.get()),
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
        |mut c: C<'_>, fun: P, env: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let s = exec(&mut c, "call_on_cleanup", CALL)?;
            let p = pending(s, "call_on_cleanup")?;
            if p.on_cleanup.is_some() {
                return violation("ic0.call_on_cleanup called twice for one call".into());
            }
            p.on_cleanup = Some((fun.get(), env.get()));
            Ok(())
        },
    )?;
    linker.func_wrap("ic0", "call_data_append", |mut c: C<'_>, src: P, size: P| -> R<()> {
        charge(&mut c, Syscall::Standard, SENT.saturating_mul(size.get()))?;
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
            charge(&mut c, Syscall::Standard, 0)?;
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
            charge(&mut c, Syscall::Standard, 0)?;
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
        charge(&mut c, Syscall::CallPerform, 0)?;
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

pub(super) fn register_stable(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap("ic0", "stable64_size", |mut c: C<'_>| -> R<u64> {
        charge(&mut c, Syscall::Free, 0)?;
        exec(&mut c, "stable64_size", Allowed::ANY)?;
        Ok(c.data().stable.size_pages())
    })?;
    linker.func_wrap(
        "ic0",
        "stable64_grow",
        |mut c: C<'_>, pages: u64| -> R<u64> {
            charge(&mut c, Syscall::StableGrow, 0)?;
            exec(&mut c, "stable64_grow", Allowed::ANY)?;
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
            charge(&mut c, Syscall::StableAccess, size)?;
            exec(&mut c, "stable64_write", Allowed::ANY)?;
            let mem = memory(&c)?;
            let state = c.data_mut();
            state
                .stable
                .check(offset, size)
                .or_else(|e| violation(format!("ic0.stable64_write: {e}")))?;
            // The replica's order: page limits, then the dirty-page charge, then the copy.
            let new_dirty = state.pages.write(offset, size).map_err(page_limit)?;
            consume(&mut c, new_dirty * DIRTY_PAGE_OVERHEAD)?;
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
            charge(&mut c, Syscall::StableAccess, size)?;
            exec(&mut c, "stable64_read", Allowed::ANY)?;
            let mem = memory(&c)?;
            let (heap, state) = mem.data_and_store_mut(&mut c);
            let range = heap_range(heap.len(), dst, size, "stable64_read")?;
            state
                .stable
                .check(offset, size)
                .or_else(|e| violation(format!("ic0.stable64_read: {e}")))?;
            state.pages.read(offset, size).map_err(page_limit)?;
            state
                .stable
                .read(offset, &mut heap[range])
                .or_else(|e| violation(format!("ic0.stable64_read: {e}")))
        },
    )?;
    Ok(())
}

fn page_limit(e: crate::stable_pages::PageLimitExceeded) -> wasmtime::Error {
    wasmtime::Error::new(HostTrap::MemoryAccessLimitExceeded(e.to_string()))
}
