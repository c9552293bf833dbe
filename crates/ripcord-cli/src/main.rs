//! The `ripcord` binary.
fn main() -> std::process::ExitCode {
    ripcord_cli::main()
}
