fn main() -> std::process::ExitCode {
    ceso::cli::run()
}
