//! `hgpose doctor`: what this board offers, which precision `auto` picks here and which of
//! hgpose's native kernels run.

use anyhow::Result;

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DoctorArgs) -> Result<()> {
    let report = hgpose::pipeline::doctor_report();
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let cpu = &report.cpu;
    out!(
        "cpu        {} ({}), {} core(s)",
        cpu.model,
        cpu.arch,
        cpu.cores
    );
    out!(
        "features   {}",
        if cpu.features.is_empty() {
            "none detected".to_string()
        } else {
            cpu.features.join(" ")
        }
    );
    out!(
        "fp16       {}",
        if cpu.fp16_arithmetic {
            "native arithmetic"
        } else {
            "no native arithmetic"
        }
    );
    out!(
        "tract f16  {}",
        if cpu.tract_fp16_kernels {
            "native f16 kernels"
        } else {
            "no native f16 kernels"
        }
    );
    out!(
        "int8 dot   {}",
        if cpu.int8_dot_product { "yes" } else { "no" }
    );
    out!(
        "auto       {}: {}",
        report.auto_precision,
        report.auto_reason
    );
    for k in &report.native_kernels {
        let runs = if k.runs {
            "this CPU can run it".to_string()
        } else {
            format!("not on this CPU: needs {}", k.needs)
        };
        out!("kernel     {} ({}): {runs}", k.name, k.what);
    }
    if report.devices.is_empty() {
        out!("devices    no cameras, framebuffers or GPIO chips found under /dev");
    }
    for d in &report.devices {
        out!("{:<10} {} ({})", d.kind, d.path, d.detail);
    }
    Ok(())
}
