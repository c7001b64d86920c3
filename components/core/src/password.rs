//! Password hashing with Argon2id, stored as PHC strings.
//!
//! PHC strings carry their own algorithm and parameters, so hashes made by
//! other Argon2 implementations (argon2-cffi and passlib, which the Python
//! service used) verify here, and [`Verification::needs_rehash`] tells login
//! to replace a hash made with other settings than the current policy:
//! weaker ones, for strength, and stronger ones too, so that every account
//! costs the same time to check as the dummy hash an unknown email is
//! checked against, and timing does not tell accounts apart.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::Password;

/// Memory cost in KiB: OWASP Password Storage Cheat Sheet, Argon2id,
/// first recommended configuration (m=19 MiB, t=2, p=1).
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over memory (OWASP, same configuration).
pub const ITERATIONS: u32 = 2;
/// Lanes (OWASP, same configuration). A component has one thread.
pub const PARALLELISM: u32 = 1;
/// Salt length in bytes (RFC 9106 section 3.1 recommends 16).
const SALT_BYTES: usize = 16;

/// Checked against when the email is unknown, so that a login for an
/// unknown account costs the same hash as one for a known account. It is
/// the hash of a random throwaway password made with the policy above;
/// nothing verifies against it.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$yq9nTVXcIYRBy5caZxCiwA$bUCuFY7GoMZ/nqa94OjC8K0y76Su4sF38iwGLxmh0HM";

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is the one the hash was made from.
    pub matches: bool,
    /// The hash is weaker than the current policy and should be replaced.
    pub needs_rehash: bool,
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the policy's parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with the current policy and a fresh random salt.
pub fn hash_password(password: &Password) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&crate::random::bytes::<SALT_BYTES>())
        .map_err(|e| anyhow::anyhow!("cannot encode the salt: {e}"))?;
    let hash = hasher()
        .hash_password(password.expose(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Checks `password` against the PHC string `stored`. A string that is not
/// an Argon2 PHC hash never matches (and is logged: it is data damage).
pub fn verify_password(password: &Password, stored: &str) -> Verification {
    let Ok(parsed) = PasswordHash::new(stored) else {
        eprintln!("a stored password hash is not a PHC string");
        // The same time as any other failed check.
        verify_against_dummy(password);
        return Verification {
            matches: false,
            needs_rehash: true,
        };
    };
    let check = |bytes: &[u8]| {
        #[cfg(test)]
        tests::ARGON2_CHECKS.with(|checks| checks.set(checks.get() + 1));
        Argon2::default().verify_password(bytes, &parsed).is_ok()
    };
    // Hashes other implementations made (the Python service's) are of the
    // password as typed; this service's, of its NFKC form, which such input
    // never is, so trying both cannot let a wrong password in. A failed
    // check of such input costs two verifications, and so does the
    // dummy's. A hash that matched as typed is replaced with the NFKC
    // form's, so that either spelling logs in from then on.
    let normalised = check(password.expose());
    let as_typed = !normalised && password.as_typed().is_some_and(check);
    let matches = normalised || as_typed;
    if !matches && cheaper_than_policy(&parsed) {
        // A hash the Python service made with lower costs is replaced only
        // at its account's next login; until then a wrong password for it
        // takes as long as one for an unknown email, so that timing does
        // not tell which addresses had accounts there.
        verify_against_dummy(password);
    }
    Verification {
        matches,
        needs_rehash: as_typed || differs_from_policy(&parsed),
    }
}

/// Spends one verification's worth of time on an unknown account.
pub fn verify_against_dummy(password: &Password) {
    #[cfg(test)]
    tests::DUMMY_CHECKS.with(|checks| checks.set(checks.get() + 1));
    let _ = verify_password(password, DUMMY_HASH);
}

/// Less memory times passes than the policy: quicker to check.
fn cheaper_than_policy(hash: &PasswordHash<'_>) -> bool {
    let param = |name: &str| u64::from(hash.params.get_decimal(name).unwrap_or_default());
    param("m") * param("t") < u64::from(MEMORY_KIB) * u64::from(ITERATIONS)
}

/// Another Argon2 variant or version, or other costs than the policy's.
fn differs_from_policy(hash: &PasswordHash<'_>) -> bool {
    let param = |name: &str| hash.params.get_decimal(name).unwrap_or_default();
    hash.algorithm != Algorithm::Argon2id.ident()
        || hash.version != Some(Version::V0x13.into())
        || param("m") != MEMORY_KIB
        || param("t") != ITERATIONS
        || param("p") != PARALLELISM
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(text: &str) -> Password {
        Password::for_login(text).unwrap()
    }

    #[test]
    fn a_new_hash_uses_the_policy_and_verifies() {
        let hash = hash_password(&password("correct horse battery staple")).unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let check = verify_password(&password("correct horse battery staple"), &hash);
        assert_eq!(
            check,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!verify_password(&password("wrong"), &hash).matches);
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        let p = password("correct horse battery staple");
        assert_ne!(hash_password(&p).unwrap(), hash_password(&p).unwrap());
    }

    // Made with Python's argon2-cffi 23 and passlib 1.7, as the service
    // being replaced stored them.
    const CFFI_DEFAULT: &str = "$argon2id$v=19$m=65536,t=3,p=4$WJBtjYbJFNcRDGpZqrstdg$mAYzZrQGv5ubTzFp8XL1mcu3KHiYz5nAZOkBzvFuxSA";
    const PASSLIB_WEAK: &str = "$argon2id$v=19$m=512,t=2,p=2$BoDQWqv1Pkeode5di/H+nw$zSNehf6d1aJ2EUKPPbDtcq6Ea7IBW/a12nBNP9CQwuQ";
    const PASSLIB_ARGON2I: &str = "$argon2i$v=19$m=65536,t=3,p=4$fg/BeO/d21uL0XpPyZmzVg$jTcyUrwVqjTz1B5nDqm0a9Mjh9BURpAv1uQ29qkOivI";

    #[test]
    fn hashes_from_the_python_service_verify() {
        let cffi = verify_password(&password("correct horse battery staple"), CFFI_DEFAULT);
        // Stronger than the policy, re-hashed all the same (see the module
        // documentation).
        assert_eq!(
            cffi,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        let weak = verify_password(&password("Tr0ub4dor&3-legacy"), PASSLIB_WEAK);
        assert_eq!(
            weak,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        let argon2i = verify_password(&password("legacy-argon2i-password"), PASSLIB_ARGON2I);
        assert_eq!(
            argon2i,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        assert!(!verify_password(&password("wrong"), CFFI_DEFAULT).matches);
    }

    thread_local! {
        /// How often this thread checked a password against the dummy hash.
        pub static DUMMY_CHECKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        /// How many Argon2 verifications this thread ran.
        pub static ARGON2_CHECKS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }

    /// Checks `password` against `stored`: whether it matched, and how many
    /// dummy checks that took.
    fn dummy_checks_for(password_text: &str, stored: &str) -> (bool, u32) {
        let before = DUMMY_CHECKS.with(|checks| checks.get());
        let matches = verify_password(&password(password_text), stored).matches;
        (matches, DUMMY_CHECKS.with(|checks| checks.get()) - before)
    }

    /// How many Argon2 verifications `run` took.
    fn argon2_checks(run: impl FnOnce()) -> u32 {
        let before = ARGON2_CHECKS.with(|checks| checks.get());
        run();
        ARGON2_CHECKS.with(|checks| checks.get()) - before
    }

    #[test]
    fn a_wrong_password_for_a_cheaper_legacy_hash_costs_a_full_check() {
        assert_eq!(dummy_checks_for("wrong", PASSLIB_WEAK), (false, 1));
        assert_eq!(
            dummy_checks_for("Tr0ub4dor&3-legacy", PASSLIB_WEAK),
            (true, 0)
        );
        // A costlier hash, or one with the policy's costs, takes no less.
        assert_eq!(dummy_checks_for("wrong", CFFI_DEFAULT), (false, 0));
        let current = hash_password(&password("correct horse battery staple")).unwrap();
        assert_eq!(dummy_checks_for("wrong", &current), (false, 0));
        assert_eq!(dummy_checks_for("wrong", "damaged"), (false, 1));
    }

    /// Made by argon2-cffi 25 (passlib's backend) from the password as
    /// typed: a ligature, a no-break space and a micro sign, all of which
    /// NFKC changes.
    const CFFI_UNNORMALISED: &str = "$argon2id$v=19$m=512,t=2,p=2$GtlJWaoUYV7f+w3wZd4VCw$/1O69fMEzng2U0KjGWR7D/MppXJiH0LWugiGpNTJvvI";
    const TYPED: &str = "\u{fb01}ve \u{fb01}ngers\u{a0}\u{b5}-legacy";

    #[test]
    fn a_legacy_hash_of_a_password_as_typed_verifies() {
        let typed = password(TYPED);
        assert!(typed.as_typed().is_some());
        assert_eq!(
            verify_password(&typed, CFFI_UNNORMALISED),
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        // Even with the policy's costs, a hash that matched only as typed
        // is replaced.
        let policy_params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).unwrap();
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        let as_typed_hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, policy_params)
            .hash_password(TYPED.as_bytes(), &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            verify_password(&typed, &as_typed_hash),
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        // Rehashed, it is the normalised form's, which either spelling
        // matches.
        let rehashed = hash_password(&typed).unwrap();
        assert!(verify_password(&typed, &rehashed).matches);
        let normalised = password("five fingers \u{3bc}-legacy");
        assert!(normalised.as_typed().is_none());
        assert!(verify_password(&normalised, &rehashed).matches);
        // A wrong password typed with such characters costs two checks,
        // as an unknown email's does.
        assert_eq!(dummy_checks_for("\u{fb01}", &rehashed), (false, 0));
        assert_eq!(dummy_checks_for("\u{fb01}", CFFI_UNNORMALISED), (false, 1));
        let wrong = password("\u{fb01}");
        let known = argon2_checks(|| assert!(!verify_password(&wrong, &rehashed).matches));
        let unknown = argon2_checks(|| verify_against_dummy(&wrong));
        assert_eq!((known, unknown), (2, 2));
        let plain = password("plain wrong");
        let known = argon2_checks(|| assert!(!verify_password(&plain, &rehashed).matches));
        let unknown = argon2_checks(|| verify_against_dummy(&plain));
        assert_eq!((known, unknown), (1, 1));
    }

    #[test]
    fn a_damaged_hash_never_matches() {
        for stored in ["", "plaintext", "$2b$12$abcdefghijklmnopqrstuv"] {
            assert!(!verify_password(&password("plaintext"), stored).matches);
        }
    }

    #[test]
    fn the_dummy_hash_has_the_policy_parameters() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert!(!differs_from_policy(&parsed));
    }
}
