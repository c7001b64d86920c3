//! The questions component.
