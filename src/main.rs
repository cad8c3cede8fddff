//! The hostinfod binary: everything is in the library; see `lib.rs`.

fn main() {
    std::process::exit(hostinfod::cli::main());
}
