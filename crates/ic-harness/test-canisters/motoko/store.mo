// A small Motoko canister for the harness's Motoko scenario (crates/ic-harness/tests/motoko.rs).
//
// Compiled by moc's default settings: a `persistent actor` with enhanced orthogonal
// persistence (a 64-bit heap kept across upgrades with `wasm_memory_persistence = keep`).
// Every `let`/`var` of a persistent actor is stable (it survives upgrades); a `transient var`
// is re-initialised by every upgrade.
import Map "mo:core/Map";
import Text "mo:core/Text";

persistent actor Store {
  // Stable: kept across upgrades.
  let entries = Map.empty<Text, Nat>();
  var writes : Nat = 0;

  // Transient: back to 0 after every upgrade.
  transient var writesSinceUpgrade : Nat = 0;

  /// Stores `value` under `key`; returns the number of writes ever made.
  public func put(key : Text, value : Nat) : async Nat {
    Map.add(entries, Text.compare, key, value);
    writes += 1;
    writesSinceUpgrade += 1;
    writes
  };

  /// The value stored under `key`, if any.
  public query func get(key : Text) : async ?Nat {
    Map.get(entries, Text.compare, key)
  };

  /// (writes ever, writes since the last upgrade, number of keys).
  public query func counters() : async (Nat, Nat, Nat) {
    (writes, writesSinceUpgrade, Map.size(entries))
  };
};
