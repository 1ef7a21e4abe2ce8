//! Benches of the floe core live in the `[[bench]]` targets of this package.
