//! `tessera-meta`: a metadata shard server (not implemented yet).

fn main() -> std::process::ExitCode {
    eprintln!("tessera-meta: the metadata shard server is not implemented in this build");
    std::process::ExitCode::FAILURE
}
