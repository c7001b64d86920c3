//! Time per Argon2id verification at the service's parameters, compiled
//! natively: the baseline the benchmark compares the component against.
//! `cargo run --release --example argon2 [iterations]`

use std::time::Instant;

use spin_auth_core::domain::Password;
use spin_auth_core::password::{hash_password, verify_password};

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let password = Password::for_login("correct horse battery staple").expect("a password");
    let hash = hash_password(&password).expect("a hash");
    // One untimed run warms caches and the allocator.
    assert!(verify_password(&password, &hash).matches);
    let mut times: Vec<f64> = (0..iterations)
        .map(|_| {
            let started = Instant::now();
            assert!(verify_password(&password, &hash).matches);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.2}", times[times.len() / 2]);
}
