//! How long the embedded price table takes to parse on first use.
//!
//! `cargo run --release -p llmux-cost --example load_time`

use std::time::Instant;

use llmux_cost::{EMBEDDED_PRICES_JSON, PriceTable};

fn main() {
    let start = Instant::now();
    let table = PriceTable::embedded();
    let first = start.elapsed();

    let start = Instant::now();
    let again = PriceTable::embedded();
    let cached = start.elapsed();

    // A fresh parse, a few times, for a steadier number.
    const RUNS: u32 = 20;
    let start = Instant::now();
    for _ in 0..RUNS {
        let t = PriceTable::from_json_str(EMBEDDED_PRICES_JSON).unwrap_or_default();
        std::hint::black_box(t.len());
    }
    let fresh = start.elapsed() / RUNS;

    println!(
        "embedded price table: {} entries from {} KiB of JSON",
        table.len(),
        EMBEDDED_PRICES_JSON.len() / 1024
    );
    println!("first PriceTable::embedded(): {first:?}");
    println!(
        "later PriceTable::embedded(): {cached:?} (same table: {})",
        std::ptr::eq(table, again)
    );
    println!("fresh parse, mean of {RUNS}: {fresh:?}");
}
