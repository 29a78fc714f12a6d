//! `apex-loadtest`: the load generator. It is built with the gateway issue; until then this
//! binary only says so and exits with a usage error.

fn main() -> std::process::ExitCode {
    eprintln!("apex-loadtest is not implemented yet (see the gateway issue)");
    std::process::ExitCode::from(2)
}
