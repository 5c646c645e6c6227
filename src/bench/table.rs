//! The bench report as Markdown tables: one with a column per device and the GPU/CPU ratio,
//! then each device's peak and the step's kernels set against it.

use std::fmt::{self, Display, Write as _};

use super::{Axis, KernelTable, Report, StepFigures};

/// `12345.6` as `12,346`: big rates stay readable.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

/// Three significant figures or so, for times and ratios.
fn sig(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else if v >= 0.01 || v == 0.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".to_owned(), f)
}

/// One row of the main table: how to read a figure, and whether a GPU/CPU ratio means something.
struct Figure {
    name: &'static str,
    get: fn(&StepFigures) -> Option<f64>,
    show: fn(f64) -> String,
    ratio: bool,
}

const FIGURES: [Figure; 9] = [
    Figure {
        name: "samples/s, per step",
        get: |f| Some(f.samples_per_s_step),
        show: thousands,
        ratio: true,
    },
    Figure {
        name: "samples/s, per epoch",
        get: |f| f.samples_per_s_epoch,
        show: thousands,
        ratio: true,
    },
    Figure {
        name: "ms per step",
        get: |f| Some(f.ms_per_step),
        show: sig,
        ratio: true,
    },
    Figure {
        name: "model GFLOP/s",
        get: |f| Some(f.gflops),
        show: sig,
        ratio: true,
    },
    Figure {
        name: "% of the device's matmul peak",
        get: |f| f.peak_share.map(|s| 100.0 * s),
        show: |v| format!("{v:.0}%"),
        ratio: false,
    },
    Figure {
        name: "dispatches per step",
        get: |f| f.dispatches_per_step,
        show: sig,
        ratio: false,
    },
    Figure {
        name: "submits per step",
        get: |f| f.submits_per_step,
        show: sig,
        ratio: false,
    },
    Figure {
        name: "host encode µs per step",
        get: |f| f.encode_us_per_step,
        show: sig,
        ratio: false,
    },
    Figure {
        name: "time to first step, ms",
        get: |f| Some(f.first_step_ms),
        show: sig,
        ratio: true,
    },
];

impl Report {
    /// Index of the CPU among the devices, if measured.
    fn cpu(&self) -> Option<usize> {
        self.devices.iter().position(|d| d.kind == "cpu")
    }

    fn gpus(&self) -> Vec<usize> {
        (0..self.devices.len())
            .filter(|&i| self.devices[i].kind == "gpu")
            .collect()
    }

    fn write_main(&self, out: &mut String) -> fmt::Result {
        let c = &self.config;
        writeln!(
            out,
            "model {}, {} (lr {}, momentum {}), {} training samples of {}",
            c.model, c.optimizer, c.lr, c.momentum, c.train_samples, c.data
        )?;
        writeln!(
            out,
            "each figure: median of ≥{} rounds of up to {} samples (fewer on a slow device) after a warm-up round, ≥{} s per device and point; \
             an epoch is timed whole when it takes ≤{} s",
            c.effort.rounds, c.effort.round_samples, c.effort.seconds, c.effort.epoch_seconds
        )?;
        writeln!(
            out,
            "machine: {}, {} cores\n",
            self.machine.cpu_model, self.machine.cores
        )?;
        writeln!(out, "devices:")?;
        for d in &self.devices {
            match d.kind {
                "gpu" => writeln!(
                    out,
                    "- {}: {} {}, driver {} {}; matmul {} ({}); adapter opened and pipelines compiled in {:.0} ms; timestamp queries: {}",
                    d.label,
                    d.backend.as_deref().unwrap_or("?"),
                    d.device_type.as_deref().unwrap_or("?"),
                    d.driver.as_deref().unwrap_or("?"),
                    d.driver_info.as_deref().unwrap_or(""),
                    d.matmul_variant.as_deref().unwrap_or("?"),
                    d.kernel_choice.as_deref().unwrap_or("?"),
                    d.open_ms,
                    if d.timestamp_queries == Some(true) {
                        "yes (they time the kernel table)"
                    } else {
                        "no (the wall clock times the kernel table)"
                    },
                )?,
                _ => writeln!(out, "- cpu: {}, {} threads", d.name, d.threads)?,
            }
        }
        let cpu = self.cpu();
        let gpus = self.gpus();
        let x_name = match c.axis {
            Axis::Batch => "batch",
            Axis::Width => "width",
        };
        let mut header = format!("\n| {x_name} | figure |");
        let mut rule = "|---|---|".to_owned();
        for d in &self.devices {
            write!(header, " {} |", d.label)?;
            rule.push_str("---:|");
        }
        if let Some(ci) = cpu {
            for &g in &gpus {
                write!(
                    header,
                    " {} / {} |",
                    short(&self.devices[g].label),
                    self.devices[ci].label
                )?;
                rule.push_str("---:|");
            }
        }
        writeln!(out, "{header}\n{rule}")?;
        for p in &self.points {
            let x = match (c.axis, p.width) {
                (Axis::Width, Some(w)) => format!("{w} (batch {})", p.batch),
                _ if p.batch == c.train_samples => format!("full ({})", p.batch),
                _ => p.batch.to_string(),
            };
            for (k, f) in FIGURES.iter().enumerate() {
                let mut row = format!("| {} | {} |", if k == 0 { &x } else { "" }, f.name);
                for d in &p.devices {
                    write!(row, " {} |", opt((f.get)(d), f.show))?;
                }
                if let Some(ci) = cpu {
                    for &g in &gpus {
                        let r = match ((f.get)(&p.devices[g]), (f.get)(&p.devices[ci])) {
                            (Some(a), Some(b)) if f.ratio && b > 0.0 => format!("{}×", sig(a / b)),
                            _ => String::new(),
                        };
                        write!(row, " {r} |")?;
                    }
                }
                writeln!(out, "{row}")?;
            }
        }
        writeln!(
            out,
            "\n— : does not apply to the device, or (per epoch) an epoch would take over {} s",
            c.effort.epoch_seconds
        )
    }

    fn write_kernels(&self, out: &mut String, t: &KernelTable) -> fmt::Result {
        let cpu = self.cpu();
        let gpu = t.gpu.map(|g| &self.devices[g]);
        let cpu_peak = cpu.map(|c| self.devices[c].peak_gflops);
        let gpu_peak = gpu.map(|g| g.peak_gflops);
        writeln!(
            out,
            "\nkernels of one step at batch {} ({}):",
            t.batch,
            match gpu {
                Some(g) => format!(
                    "the dispatches of {}'s step plan, each {}; the CPU twin of each (same name, same shapes, rows split over the threads as the CPU backend does) timed the same way",
                    g.label,
                    t.gpu_clock.as_deref().unwrap_or("?")
                ),
                None =>
                    "the CPU backend's kernels, each run back to back at the step's shapes".into(),
            }
        )?;
        let mut header = "| # | kernel | what |".to_owned();
        let mut rule = "|---:|---|---|".to_owned();
        if gpu.is_some() {
            header.push_str(
                " form | gpu wall µs | gpu µs | gpu GFLOP/s or GB/s | % of gpu peak | share of gpu step |",
            );
            rule.push_str("---|---:|---:|---:|---:|---:|");
        }
        if cpu.is_some() {
            header.push_str(" cpu µs | cpu GFLOP/s or GB/s | % of cpu peak | share of cpu step |");
            rule.push_str("---:|---:|---:|---:|");
        }
        writeln!(out, "{header}\n{rule}")?;
        let sum_gpu: f64 = t.rows.iter().filter_map(|r| r.gpu_us).sum();
        let sum_cpu: f64 = t.rows.iter().filter_map(|r| r.cpu_us).sum();
        // GFLOP/s for products, GB/s (of the bytes the kernel must touch) for the rest.
        let rate = |us: f64, flops: Option<u64>, bytes: u64| match flops {
            Some(f) => format!("{} GFLOP/s", sig(f as f64 / us / 1e3)),
            None => format!("{} GB/s", sig(bytes as f64 / us / 1e3)),
        };
        let pct = |us: f64, flops: Option<u64>, peak: Option<f64>| match (flops, peak) {
            (Some(f), Some(p)) if p > 0.0 => format!("{:.0}%", 100.0 * f as f64 / us / 1e3 / p),
            _ => String::new(),
        };
        // µs, rate, % of peak and share of the step: the same four cells for either device.
        let cells = |us: Option<f64>, r: &super::KernelRow, peak: Option<f64>, sum: f64| {
            let Some(u) = us else {
                return " — | | | |".to_owned();
            };
            format!(
                " {} | {} | {} | {:.0}% |",
                sig(u),
                rate(u, r.flops, r.bytes),
                pct(u, r.flops, peak),
                100.0 * u / sum.max(1e-9)
            )
        };
        for (i, r) in t.rows.iter().enumerate() {
            let mut row = format!("| {i} | {} | {} |", r.kernel, r.label);
            if gpu.is_some() {
                write!(
                    row,
                    " {} | {} |",
                    r.form.as_deref().unwrap_or(""),
                    opt(r.gpu_wall_us, sig)
                )?;
                row.push_str(&cells(r.gpu_us, r, gpu_peak, sum_gpu));
            }
            if cpu.is_some() {
                row.push_str(&cells(r.cpu_us, r, cpu_peak, sum_cpu));
            }
            writeln!(out, "{row}")?;
        }
        // The kernels on their own against the step as measured: the gap is what running them
        // together costs or saves (launches, synchronisation, caches).
        let measured = |dev: Option<usize>| {
            let d = dev?;
            self.points
                .iter()
                .find(|p| p.batch == t.batch && p.width.is_none())
                .map(|p| p.devices[d].ms_per_step * 1e3)
        };
        let sum_line = |what: &str, sum: f64, dev: Option<usize>| {
            let m = measured(dev).map_or(String::new(), |m| {
                format!(" (whole step measured: {} µs)", sig(m))
            });
            format!("{what} sum to {} µs{m}", sig(sum))
        };
        let mut sums = Vec::new();
        if gpu.is_some() {
            sums.push(sum_line("gpu kernels", sum_gpu, t.gpu));
        }
        if cpu.is_some() {
            sums.push(sum_line("cpu twins", sum_cpu, cpu));
        }
        writeln!(out, "{}", sums.join("; "))
    }
}

/// `gpu: llvmpipe (LLVM 19.1.7, 256 bits)` as `llvmpipe`: the ratio column's header.
fn short(label: &str) -> String {
    let name = label.strip_prefix("gpu: ").unwrap_or(label);
    name.split(" (").next().unwrap_or(name).to_owned()
}

impl Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        self.write_main(&mut out)?;
        writeln!(
            out,
            "\npeak: the best square matrix product each device reaches, sides {}/4 to {}:",
            self.config.peak_size, self.config.peak_size
        )?;
        for d in &self.devices {
            writeln!(
                out,
                "- {}: {} GFLOP/s ({})",
                d.label,
                sig(d.peak_gflops),
                d.peak_source
            )?;
        }
        for t in &self.kernels {
            self.write_kernels(&mut out, t)?;
        }
        for d in self.devices.iter().filter(|d| d.kind == "gpu") {
            writeln!(
                out,
                "\nkernel chosen and why, {}: {} matmul, {}; the form column shows which implementation each dispatch runs",
                d.label,
                d.matmul_variant.as_deref().unwrap_or("?"),
                d.kernel_choice.as_deref().unwrap_or("?")
            )?;
        }
        if let Some(t) = &self.tuning {
            writeln!(out, "\nmatmul tuning:\n{t}")?;
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(sig(0.01234), "0.012");
        assert_eq!(sig(12.345), "12.3");
        assert_eq!(sig(0.00016), "1.6e-4");
        assert_eq!(short("gpu: llvmpipe (LLVM 19.1.7, 256 bits)"), "llvmpipe");
    }
}
