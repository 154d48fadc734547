fn main() -> anyhow::Result<()> {
    let code = hapi_cli::main_from(std::env::args_os())?;
    std::process::exit(code);
}
