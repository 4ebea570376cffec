//! The `lanreach-agent` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    lanreach_agent::main()
}
