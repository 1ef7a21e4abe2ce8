//! The `floe` command.

fn main() {
    println!("floe {}", env!("CARGO_PKG_VERSION"));
}
