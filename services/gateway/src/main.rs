//! `apex-gateway`: the HTTP gateway (uploads, status, search, rollout). It is built by the
//! gateway issue; until then this binary only says so and exits with a usage error.

fn main() -> std::process::ExitCode {
    eprintln!("apex-gateway is not implemented yet (see the gateway issue)");
    std::process::ExitCode::from(2)
}
