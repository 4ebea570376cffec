//! The `lanreach-peer` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    lanreach_peer::main()
}
