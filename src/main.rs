//! The `snowflake` binary: all behaviour lives in the library; see `specialsnowflake::cli`.

fn main() -> std::process::ExitCode {
    specialsnowflake::cli::main()
}
