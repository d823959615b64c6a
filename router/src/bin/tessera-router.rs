//! `tessera-router`: the stateless front (not implemented yet).

fn main() -> std::process::ExitCode {
    eprintln!("tessera-router: the router server is not implemented in this build");
    std::process::ExitCode::FAILURE
}
