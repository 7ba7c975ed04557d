//! The cycles `ic0` functions: balances, accepting, burning and the cost queries.

use wasmtime::Linker;

use super::{
    Allowed, BURN, C, CYCLES_IN, CanisterState, Ptr, R, REFUNDED, Syscall, amount, charge, exec,
    write_u128,
};

pub(super) fn register_cycles<P: Ptr>(linker: &mut Linker<CanisterState>) -> R<()> {
    linker.func_wrap(
        "ic0",
        "msg_cycles_available128",
        |mut c: C<'_>, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let v = exec(&mut c, "msg_cycles_available128", CYCLES_IN)?.cycles_available;
            write_u128(&mut c, dst, v, "msg_cycles_available128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "msg_cycles_refunded128",
        |mut c: C<'_>, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let v = exec(&mut c, "msg_cycles_refunded128", REFUNDED)?.cycles_refunded;
            write_u128(&mut c, dst, v, "msg_cycles_refunded128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "msg_cycles_accept128",
        |mut c: C<'_>, high: u64, low: u64, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
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
        |mut c: C<'_>, high: u64, low: u64, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
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
        |mut c: C<'_>, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let v = exec(&mut c, "canister_cycle_balance128", Allowed::STAR)?.balance;
            write_u128(&mut c, dst, v, "canister_cycle_balance128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "canister_liquid_cycle_balance128",
        |mut c: C<'_>, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let v =
                exec(&mut c, "canister_liquid_cycle_balance128", Allowed::STAR)?.liquid_balance();
            write_u128(&mut c, dst, v, "canister_liquid_cycle_balance128")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "cost_call",
        |mut c: C<'_>, name_len: u64, payload_len: u64, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let s = exec(&mut c, "cost_call", Allowed::ANY)?;
            let cost = s.fees.cost_call(name_len, payload_len);
            write_u128(&mut c, dst, cost, "cost_call")
        },
    )?;
    linker.func_wrap(
        "ic0",
        "cost_create_canister",
        |mut c: C<'_>, dst: P| -> R<()> {
            charge(&mut c, Syscall::Standard, 0)?;
            let cost = exec(&mut c, "cost_create_canister", Allowed::ANY)?
                .fees
                .creation();
            write_u128(&mut c, dst, cost, "cost_create_canister")
        },
    )?;
    Ok(())
}
