//! Time to sign and to verify an access token, HS256 and EdDSA, compiled
//! natively: the baseline the benchmark compares the component against
//! (the host fixture's `GET /jwt` runs the same loop in Wasm).
//! `cargo run --release -p spin-auth-core --example jwt`; prints one JSON line.

use std::time::Instant;

use spin_auth_core::domain::Role;
use spin_auth_core::tokens::{AccessKeys, SigningKey};

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn time(keys: &AccessKeys) -> String {
    let token = keys
        .mint("user", "session", &[Role::User], 900)
        .expect("a token");
    let (mut sign, mut verify) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let started = Instant::now();
        let _ = keys
            .mint("user", "session", &[Role::User], 900)
            .expect("a token");
        sign.push(started.elapsed().as_secs_f64() * 1e6);
        let started = Instant::now();
        keys.verify(&token).expect("valid");
        verify.push(started.elapsed().as_secs_f64() * 1e6);
    }
    format!(
        r#"{{"sign_us": {:.2}, "verify_us": {:.2}}}"#,
        median(sign),
        median(verify)
    )
}

fn main() {
    let hs256 = AccessKeys::new(&[7u8; 32], "spin-auth", "spin-auth", 60);
    let eddsa = AccessKeys::ed25519(SigningKey::generate(), None, "spin-auth", "spin-auth", 60);
    println!(
        r#"{{"HS256": {}, "EdDSA": {}}}"#,
        time(&hs256),
        time(&eddsa)
    );
}
