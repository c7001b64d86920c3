//! Randomness from the OS source (WASI `random_get` in a component).

/// `N` random bytes. The OS source failing is not something to recover
/// from: a token made without it would be guessable.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buffer = [0u8; N];
    getrandom::fill(&mut buffer).expect("the OS random source is available");
    buffer
}

/// A random (version 4) UUID.
pub fn uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(bytes::<16>()).into_uuid()
}
