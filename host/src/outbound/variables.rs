//! `fermyon:spin/variables@2.0.0`: a component reads the variables its
//! manifest entry declares, already expanded at startup.

use super::RequestState;
use super::fermyon::spin::variables::{Error, Host};

impl Host for RequestState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        let started = self.call_started();
        let result = self.variable(name);
        self.call_ended("variables.get", started);
        Ok(result)
    }
}

impl RequestState {
    fn variable(&self, name: String) -> Result<String, Error> {
        if let Err(reason) = check_key(&name) {
            return Err(Error::InvalidName(format!("{name:?}: {reason}")));
        }
        match self.component.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(Error::Undefined(format!(
                "no variable for {:?}.{name:?}",
                self.component.id
            ))),
        }
    }
}

/// The checks Spin applies to a name passed to `get`, in its order and
/// with its reasons.
fn check_key(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {bad:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase ASCII letter".to_owned());
    }
    if name.ends_with('_') {
        return Err("must end with a lowercase ASCII letter or digit".to_owned());
    }
    if name.contains("__") {
        return Err("must not contain multiple consecutive underscores".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_key;

    #[test]
    fn keys_are_checked_in_spins_order() {
        assert!(check_key("jwt_key").is_ok());
        assert_eq!(check_key("").unwrap_err(), "must not be empty");
        assert!(
            check_key("aX")
                .unwrap_err()
                .starts_with("invalid character 'X'")
        );
        assert!(check_key("1a").unwrap_err().contains("must start"));
        assert!(check_key("a_").unwrap_err().contains("must end"));
        assert!(check_key("a__b").unwrap_err().contains("consecutive"));
    }
}
