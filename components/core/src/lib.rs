//! Shared library of the spin-auth components.
