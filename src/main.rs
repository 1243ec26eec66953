use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // GPUs numbered by PCI bus, as NVML (the memory checks) and `[asr] gpu_device` count
    // them, unless the operator chose otherwise; set before any thread or CUDA starts.
    if std::env::var_os("CUDA_DEVICE_ORDER").is_none() {
        std::env::set_var("CUDA_DEVICE_ORDER", "PCI_BUS_ID");
    }
    let cli = hotfolderd::cli::Cli::parse();
    // The daemon reports what it does at info level; commands stay quiet unless asked.
    let daemon = matches!(cli.command, hotfolderd::cli::Command::Run { .. });
    hotfolderd::telemetry::init(cli.verbose || daemon);
    hotfolderd::commands::run(cli)
}
