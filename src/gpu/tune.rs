//! `--kernel auto`: the matmul forms chosen by measurement. For each product of a model's
//! training step (forward, backward-input and backward-weight, per layer) the forms valid for
//! its shape are checked against the CPU twin and timed on the adapter, and the fastest that
//! passes is kept, in memory for the device and in a small JSON file per user, keyed by
//! adapter, driver, the matmul sources' hash and the shape.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use web_time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::gpu::context::{GpuContext, GpuOptions};
use crate::gpu::kernels::{Kernel, Kernels, variant_set_version};
use crate::gpu::matmul::{CANDIDATES, Form, MatmulVariant, Mm};
use crate::gpu::plan::build::{packable, packed_key, tuned_products};
use crate::gpu::plan::{Plan, PlanBuilder, words};
use crate::gpu::{Gpu, verify};
use crate::model::ModelSpec;

/// The cache file's name inside the cache directory.
pub const CACHE_FILE: &str = "matmul-tuning.json";
/// The cache file's layout version.
const FORMAT: u32 = 1;
/// Rows the parity check runs at most (the twin is plain loops; the form's code paths do not
/// depend on the row count past a few tiles).
const PARITY_ROWS: usize = 256;
/// Reduction terms a probe runs at most (a multiple of 4, as the vec4 forms read them): enough
/// that a fast form's probe is not mostly the dispatch's fixed cost, scaled up with it.
const PROBE_K: usize = 64;
/// Workgroups a probe runs at most along each axis of the output: a slow form's probe then
/// costs a few of its workgroups, not the whole product (lavapipe runs a tiled weight
/// gradient's 392 workgroups in about 100 ms).
const PROBE_GROUPS: u32 = 2;
/// A form whose probe is over this many times the best probe is not timed in full (after a
/// second look).
const CUT: f64 = 4.0;
/// Nor one whose probe, or first full run, is over this many times the best full time so far:
/// probes come within about a third of the full time here, so such a form would not win.
const NEAR: f64 = 2.0;
/// Wall time one timing submit aims for.
const TARGET: Duration = Duration::from_millis(2);

/// The device's tuning state: choices made so far, and the cache file.
pub struct Tuner {
    /// The cache file (None: disabled).
    pub cache: Option<PathBuf>,
    /// What identifies this adapter and matmul family in the cache.
    id: Identity,
    memo: Mutex<HashMap<String, Form>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    adapter: String,
    backend: String,
    driver: String,
    /// variant_set_version() and how the subgroup forms were built.
    variants: String,
}

/// Where the cache lives: the option, $DESCENT_CACHE_DIR, $XDG_CACHE_HOME/descent,
/// ~/.cache/descent; None when disabled (the option or $DESCENT_NO_TUNE_CACHE) or unknown.
pub fn cache_dir(opts: &GpuOptions) -> Option<PathBuf> {
    // No files on the web: the choices live in memory for the page's device.
    if cfg!(not(feature = "native")) {
        return None;
    }
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    let off = set("DESCENT_NO_TUNE_CACHE").is_some_and(|v| v != "0");
    if opts.no_tune_cache || off {
        return None;
    }
    opts.cache_dir
        .clone()
        .or_else(|| set("DESCENT_CACHE_DIR").map(PathBuf::from))
        .or_else(|| set("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("descent")))
        .or_else(|| set("HOME").map(|h| PathBuf::from(h).join(".cache").join("descent")))
}

impl Tuner {
    pub fn new(opts: &GpuOptions, ctx: &GpuContext, kernels: &Kernels) -> Self {
        let info = &ctx.info;
        let lanes = match kernels.lanes {
            Some(l) if l.shared => format!("{}-lane shared", l.lanes),
            Some(l) => format!("{}-lane subgroups", l.lanes),
            None => "no subgroups".to_owned(),
        };
        Tuner {
            cache: cache_dir(opts).map(|d| d.join(CACHE_FILE)),
            id: Identity {
                adapter: info.name.clone(),
                backend: format!("{:?}", info.backend),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_owned(),
                variants: format!("{} {lanes}", variant_set_version()),
            },
            memo: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Form> {
        self.memo.lock().ok()?.get(key).copied()
    }

    fn set(&self, key: &str, form: Form) {
        if let Ok(mut m) = self.memo.lock() {
            m.insert(key.to_owned(), form);
        }
    }
}

/// One form timed (or not) for one product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub form: String,
    /// Median-free minimum wall time of one dispatch, in µs (None: not timed, it failed parity).
    pub micros: Option<f64>,
    /// Whether it matched the CPU twin (None: not checked).
    pub parity: Option<bool>,
    /// `micros` is only a probe's time scaled to the whole (a part of the product): that was
    /// over four times the best probe or twice the best full time, so the form was not timed in
    /// full.
    #[serde(default)]
    pub estimate: bool,
}

/// Where a choice came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Timed now.
    Measured,
    /// Read from the cache file.
    Cache,
    /// Chosen earlier on this device, in this process.
    Memory,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Measured => "measured",
            Source::Cache => "cache",
            Source::Memory => "this process",
        }
    }
}

/// One product of the step and the form it runs.
#[derive(Clone, Debug)]
pub struct TuneEntry {
    /// Which product, e.g. `layers.0 matmul_forward`.
    pub what: String,
    pub kernel: Kernel,
    /// The shape key: sizes, strides and offsets.
    pub shape: String,
    pub candidates: Vec<Candidate>,
    pub chosen: Form,
    pub source: Source,
    /// The input layer's pair weighed packed (chosen Input) against unpacked (the pair then
    /// appears again, each product with its own entry).
    pub pair: bool,
}

/// What `--kernel` chose for a model, and why: plain data for `bench` and the tests.
#[derive(Clone, Debug)]
pub struct TuneReport {
    pub policy: MatmulVariant,
    pub adapter: String,
    /// The cache file (None: disabled).
    pub cache: Option<PathBuf>,
    /// What happened to the cache file, when worth saying (corrupt, stale, not written).
    pub cache_notes: Vec<String>,
    pub entries: Vec<TuneEntry>,
    /// Wall time spent checking and timing (zero when everything came from the cache).
    pub elapsed: Duration,
    /// The part of `elapsed` that was each form's first run, where a driver may compile the
    /// shader (lavapipe does): what any first use of the chosen forms costs anyway.
    pub compile: Duration,
}

impl TuneReport {
    /// Nothing measured or chosen yet on `g`.
    pub fn none(g: &Gpu) -> Self {
        TuneReport {
            policy: g.kernels.variant,
            adapter: g.ctx.describe(),
            cache: g.tuner.cache.clone(),
            cache_notes: Vec::new(),
            entries: Vec::new(),
            elapsed: Duration::ZERO,
            compile: Duration::ZERO,
        }
    }

    pub fn measured(&self) -> usize {
        self.count(Source::Measured)
    }

    pub fn from_cache(&self) -> usize {
        self.count(Source::Cache)
    }

    fn count(&self, s: Source) -> usize {
        self.entries.iter().filter(|e| e.source == s).count()
    }
}

impl fmt::Display for TuneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.policy != MatmulVariant::Auto {
            return writeln!(
                f,
                "matmul forms: forced by --kernel {} on {}",
                self.policy.name(),
                self.adapter
            );
        }
        writeln!(
            f,
            "matmul forms: measured on {} ({} products: {} timed in {:.0} ms ({:.0} of them first runs, compiling), {} from the cache{})",
            self.adapter,
            self.entries.len(),
            self.measured(),
            self.elapsed.as_secs_f64() * 1e3,
            self.compile.as_secs_f64() * 1e3,
            self.from_cache(),
            match &self.cache {
                Some(p) => format!(" {}", p.display()),
                None => ", cache off".to_owned(),
            }
        )?;
        for n in &self.cache_notes {
            writeln!(f, "  note: {n}")?;
        }
        for e in &self.entries {
            let cands: Vec<String> = e
                .candidates
                .iter()
                .map(|c| {
                    let t = match (c.micros, c.estimate) {
                        (None, _) => "-".to_owned(),
                        (Some(us), false) => format!("{us:.1} µs"),
                        (Some(us), true) => format!("~{us:.0} µs (estimate)"),
                    };
                    let p = match c.parity {
                        Some(true) => "",
                        Some(false) => " FAILED parity",
                        None => " unchecked",
                    };
                    format!("{} {t}{p}", c.form)
                })
                .collect();
            writeln!(
                f,
                "  {:<28} {:<52} {:<9} ({}) {}",
                e.what,
                e.shape,
                match (e.pair, e.chosen) {
                    (true, Form::Input) => "packed",
                    (true, _) => "unpacked",
                    (false, f) => f.name(),
                },
                e.source.name(),
                cands.join(", ")
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CacheEntry {
    #[serde(flatten)]
    id: Identity,
    key: String,
    form: String,
    candidates: Vec<Candidate>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    format: u32,
    entries: Vec<CacheEntry>,
}

/// The cache file's entries; a missing file is empty, and an unreadable, corrupt or other-format
/// one is empty with a note (it is rewritten when the choices are saved).
fn load(path: &Path, notes: &mut Vec<String>) -> Vec<CacheEntry> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            notes.push(format!("{} unreadable ({e}), ignored", path.display()));
            return Vec::new();
        }
    };
    match serde_json::from_str::<CacheFile>(&text) {
        Ok(c) if c.format == FORMAT => c.entries,
        Ok(c) => {
            notes.push(format!(
                "{} has layout {} (this build writes {FORMAT}), ignored and rewritten",
                path.display(),
                c.format
            ));
            Vec::new()
        }
        Err(e) => {
            notes.push(format!(
                "{} is corrupt ({e}), ignored and rewritten",
                path.display()
            ));
            Vec::new()
        }
    }
}

/// Adds `new` to the file, keeping other adapters' entries, dropping this adapter's stale ones
/// (another matmul family), and keeping an entry another process wrote meanwhile for the same
/// key (the first measurement stays, so runs that share a cache run the same forms).
#[cfg(feature = "native")]
fn save(path: &Path, id: &Identity, new: Vec<CacheEntry>) -> Result<()> {
    let mut ignored = Vec::new();
    let mut entries: Vec<CacheEntry> = load(path, &mut ignored)
        .into_iter()
        .filter(|e| {
            let same_place = e.id.adapter == id.adapter
                && e.id.backend == id.backend
                && e.id.driver == id.driver;
            !same_place || e.id.variants == id.variants
        })
        .collect();
    for n in new {
        if !entries.iter().any(|e| e.id == n.id && e.key == n.key) {
            entries.push(n);
        }
    }
    let file = CacheFile {
        format: FORMAT,
        entries,
    };
    let json = serde_json::to_string_pretty(&file)
        .map_err(|e| crate::error::Error::Gpu(format!("tuning cache: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
    }
    crate::write_atomic(path, json.as_bytes())
}

/// Without files (the web) there is no cache to save to: cache_dir() is None there.
#[cfg(not(feature = "native"))]
fn save(_: &Path, _: &Identity, _: Vec<CacheEntry>) -> Result<()> {
    Ok(())
}

/// One product the step runs, as the tuner sees it.
pub(crate) struct Product {
    pub what: String,
    pub kernel: Kernel,
    pub mm: Mm,
}

/// Chooses the forms of the training step's products for `spec` over `rows`-row passes
/// (`pixels`: the batch comes from packed images, so the input layer may read it packed).
/// Under `--kernel blocked|tiled` it measures nothing and says so.
pub fn tune_model(g: &Gpu, spec: &ModelSpec, rows: usize, pixels: bool) -> Result<TuneReport> {
    let t = &g.tuner;
    let mut report = TuneReport::none(g);
    if g.kernels.variant != MatmulVariant::Auto {
        return Ok(report);
    }
    let start = Instant::now();
    let cached = t
        .cache
        .as_ref()
        .map(|p| load(p, &mut report.cache_notes))
        .unwrap_or_default();
    let from_cache = |key: &str| {
        cached
            .iter()
            .find(|e| e.id == t.id && e.key == key)
            .and_then(|e| Some((Form::from_name(&e.form)?, e.candidates.clone())))
    };
    let mut fresh = Vec::new();
    // Seconds of first runs (see TuneReport::compile).
    let mut compile = 0.0;
    let packed = (g.fuse && pixels)
        .then(|| packable(g, spec, rows))
        .flatten();
    let mut products = tuned_products(g, spec, rows);
    // Non-packed candidates already timed while weighing the packed pair, by shape key.
    let mut timed: HashMap<String, Vec<Candidate>> = HashMap::new();
    // The input layer's pair, weighed with the packed form first: both read the batch packed
    // or neither does.
    if let Some((fwd, bwd)) = packed {
        let key = packed_key(&fwd);
        let (chosen, source, pair) = match (g.tuned(&key), from_cache(&key)) {
            (Some(f), _) => (f, Source::Memory, None),
            (None, Some((f, c))) => (f, Source::Cache, Some(c)),
            (None, None) => {
                let mut pair = Vec::new();
                let mut total = [0.0f64; 2];
                for (i, (kernel, mm)) in [
                    (Kernel::MatmulForward, fwd),
                    (Kernel::MatmulBackwardWeight, bwd),
                ]
                .into_iter()
                .enumerate()
                {
                    let input =
                        measure_all(g, kernel, &mm, &[Form::Input], i as u32, &mut compile)?
                            .pop()
                            .unwrap_or(Candidate {
                                form: Form::Input.name().to_owned(),
                                micros: None,
                                parity: None,
                                estimate: false,
                            });
                    let best = measure_all(g, kernel, &mm, &CANDIDATES, i as u32, &mut compile)?;
                    let (_, t_best) = fastest(&best).unwrap_or((Form::Scalar, f64::INFINITY));
                    timed.insert(mm.key(kernel), best.clone());
                    total[0] += input
                        .micros
                        .filter(|_| input.parity == Some(true))
                        .unwrap_or(f64::INFINITY);
                    total[1] += t_best;
                    pair.push(input);
                    pair.extend(best);
                }
                let f = if total[0] <= total[1] {
                    Form::Input
                } else {
                    Form::Scalar
                };
                (f, Source::Measured, Some(pair))
            }
        };
        t.set(&key, chosen);
        if let (Source::Measured, Some(c)) = (source, &pair) {
            fresh.push(CacheEntry {
                id: t.id.clone(),
                key: key.clone(),
                form: chosen.name().to_owned(),
                candidates: c.clone(),
            });
        }
        report.entries.push(TuneEntry {
            what: "layers.0 forward + weight gradient, packed batch".to_owned(),
            kernel: Kernel::MatmulForward,
            shape: key,
            candidates: pair.unwrap_or_default(),
            chosen,
            source,
            pair: true,
        });
        if chosen == Form::Input {
            // Those two products run packed; nothing else to choose for them.
            let pair = [
                fwd.key(Kernel::MatmulForward),
                bwd.key(Kernel::MatmulBackwardWeight),
            ];
            products.retain(|p| !pair.contains(&p.mm.key(p.kernel)));
        }
    }
    for (i, p) in products.iter().enumerate() {
        let key = p.mm.key(p.kernel);
        let valid = |f: Form| {
            f != Form::Input && g.kernels.has_matmul_form(f) && f.accepts(p.kernel, &p.mm)
        };
        let (chosen, source, candidates) = match (g.tuned(&key), from_cache(&key)) {
            (Some(f), _) => (f, Source::Memory, Vec::new()),
            (None, Some((f, c))) if valid(f) => (f, Source::Cache, c),
            _ => {
                let c = match timed.remove(&key) {
                    Some(c) => c,
                    None => {
                        measure_all(g, p.kernel, &p.mm, &CANDIDATES, 10 + i as u32, &mut compile)?
                    }
                };
                let f = fastest(&c).map(|(f, _)| f).unwrap_or(Form::Scalar);
                fresh.push(CacheEntry {
                    id: t.id.clone(),
                    key: key.clone(),
                    form: f.name().to_owned(),
                    candidates: c.clone(),
                });
                (f, Source::Measured, c)
            }
        };
        t.set(&key, chosen);
        report.entries.push(TuneEntry {
            what: p.what.clone(),
            kernel: p.kernel,
            shape: key,
            candidates,
            chosen,
            source,
            pair: false,
        });
    }
    if report.measured() > 0 {
        report.elapsed = start.elapsed();
        report.compile = Duration::from_secs_f64(compile);
    }
    if let (Some(path), false) = (&t.cache, fresh.is_empty()) {
        // The cache only saves time: a file that cannot be written is reported, not fatal.
        if let Err(e) = save(path, &t.id, fresh) {
            report.cache_notes.push(format!("choices not saved: {e}"));
        }
    }
    Ok(report)
}

/// The fastest candidate that passed parity.
fn fastest(c: &[Candidate]) -> Option<(Form, f64)> {
    c.iter()
        .filter(|c| c.parity == Some(true))
        .filter_map(|c| Some((Form::from_name(&c.form)?, c.micros?)))
        .filter(|(f, _)| *f != Form::Input)
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Times every form of `forms` this device built that accepts the product, then checks them
/// against the CPU twin from the fastest down until one passes (the rest stay unchecked: they
/// would not be chosen). Each form is probed first (see [`Scratch::probe`]); then, fastest
/// probe first, the forms are timed in full unless their probe is over [`CUT`] times the best
/// probe or [`NEAR`] times the best full time so far (their probe is then the estimate
/// reported). Adds the forms' first runs to `compile` (seconds).
fn measure_all(
    g: &Gpu,
    kernel: Kernel,
    mm: &Mm,
    forms: &[Form],
    seed: u32,
    compile: &mut f64,
) -> Result<Vec<Candidate>> {
    let scratch = Scratch::new(g, kernel, mm);
    let forms: Vec<Form> = forms
        .iter()
        .copied()
        .filter(|&f| g.kernels.has_matmul_form(f) && f.accepts(kernel, mm))
        .collect();
    // A first estimate from a small part of the product each (cheap even for a form that is
    // slow here).
    let mut probes = Vec::new();
    for &f in &forms {
        let p = scratch.probe(g, kernel, mm, f)?;
        *compile += p.compile;
        probes.push(p);
    }
    let cut = CUT
        * probes
            .iter()
            .map(|p| p.estimate)
            .fold(f64::INFINITY, f64::min);
    // A second look at the forms the first rules out: one stall on a busy machine must not.
    for p in probes.iter_mut().filter(|p| p.estimate > cut) {
        p.estimate = p.estimate.min(p.again(g)?);
    }
    let mut by_probe: Vec<usize> = (0..forms.len()).collect();
    by_probe.sort_by(|&a, &b| probes[a].estimate.total_cmp(&probes[b].estimate));
    let mut out = vec![(Form::Scalar, 0.0, true); forms.len()];
    let mut best = f64::INFINITY;
    for i in by_probe {
        let (f, mut p) = (forms[i], probes[i].estimate);
        if p <= cut && p > NEAR * best {
            // A second look here too, before the rule below leaves the form out.
            p = p.min(probes[i].again(g)?);
        }
        out[i] = if p > cut || p > NEAR * best {
            (f, p, true)
        } else {
            let t = scratch.time(g, kernel, mm, f, p, best)?;
            best = best.min(t);
            (f, t, false)
        };
    }
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by(|&a, &b| out[a].1.total_cmp(&out[b].1));
    let mut parity_of = vec![None; out.len()];
    for i in order.into_iter().filter(|&i| !out[i].2) {
        let pass = parity(g, kernel, mm, out[i].0, seed)?;
        parity_of[i] = Some(pass);
        if pass {
            break;
        }
    }
    Ok(out
        .into_iter()
        .zip(parity_of)
        .map(|((f, t, estimate), parity)| Candidate {
            form: f.name().to_owned(),
            micros: Some(t * 1e6),
            parity,
            estimate,
        })
        .collect())
}

fn parity(g: &Gpu, kernel: Kernel, mm: &Mm, form: Form, seed: u32) -> Result<bool> {
    let cap = |r: usize| r.min(PARITY_ROWS);
    let row = match (kernel, form) {
        (Kernel::MatmulForward, Form::Input) => verify::wait(verify::check_matmul_input(
            g, mm.m, mm.n, false, false, None, seed,
        ))?,
        (_, Form::Input) => verify::wait(verify::check_matmul_input(
            g, mm.k, mm.m, true, false, None, seed,
        ))?,
        (Kernel::MatmulForward, _) => verify::wait(verify::check_matmul_forward(
            g,
            (cap(mm.m), mm.k, mm.n),
            form,
            seed,
        ))?,
        (Kernel::MatmulBackwardInput, _) => verify::wait(verify::check_matmul_backward_input(
            g,
            (cap(mm.m), mm.n, mm.k),
            form,
            seed,
        ))?,
        _ => verify::wait(verify::check_matmul_backward_weight_bias(
            g,
            (cap(mm.k), mm.n, mm.m),
            false,
            form,
            seed,
        ))?,
    };
    Ok(row.pass())
}

/// Buffers laid out like the model's for timing one product (contents do not matter).
struct Scratch {
    /// c, a, b, aux: storage, each covering every index its binding can reach.
    bufs: Vec<wgpu::Buffer>,
    /// The Input form's uniform arrays: the packed batch and dout.
    xu: wgpu::Buffer,
    du: wgpu::Buffer,
}

impl Scratch {
    fn new(g: &Gpu, kernel: Kernel, mm: &Mm) -> Self {
        let reach = |off: usize, s1: usize, n1: usize, s2: usize, n2: usize| {
            off + s1 * n1.saturating_sub(1) + s2 * n2.saturating_sub(1) + 1
        };
        // Every index any of the four bindings can reach, plus a vec4 of slack.
        let len = [
            reach(mm.a.0, mm.a.1, mm.m, mm.a.2, mm.k),
            reach(mm.b.0, mm.b.1, mm.k, mm.b.2, mm.n),
            mm.c_off + mm.m * mm.n,
            mm.bias_off + mm.m * mm.n + mm.m.max(mm.n),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 4;
        let bytes = (len * 4) as u64;
        Scratch {
            bufs: ["c", "a", "b", "aux"]
                .iter()
                .map(|n| g.storage(&format!("tune.{n}"), bytes))
                .collect(),
            xu: g.storage_uniform("tune.xb", 0),
            du: if kernel == Kernel::MatmulBackwardWeight {
                g.storage_uniform("tune.dout", 0)
            } else {
                g.no_uniform.clone()
            },
        }
    }

    /// An estimate of one dispatch of `mm` in `form`, in seconds: the dispatch's fixed cost
    /// (one workgroup over 4 terms), plus the work of at most PROBE_GROUPS² of its workgroups
    /// over at most PROBE_K of its k terms, scaled to the whole. Every workgroup of a form does
    /// the same work (edge tiles at most less), and each term costs in proportion. The first
    /// run is the form's first use, where lavapipe compiles the shader (tens of ms): it is
    /// returned apart, as `compile`.
    fn probe(&self, g: &Gpu, kernel: Kernel, mm: &Mm, form: Form) -> Result<Probe> {
        let with_k = |k: usize| Mm {
            k: mm.k.min(k),
            ..*mm
        };
        let [gx, gy, gz] = g.kernels.groups(form, mm.m, mm.n);
        let tiny = self.plan(g, kernel, &with_k(4), form, [1, 1, 1])?;
        let compile = run(g, &tiny, 1)?;
        let fixed = run(g, &tiny, 1)?;
        let part = [gx.min(PROBE_GROUPS), gy.min(PROBE_GROUPS), gz];
        let short = with_k(PROBE_K);
        let plan = self.plan(g, kernel, &short, form, part)?;
        let whole = (gx as f64 * gy as f64) / (part[0] as f64 * part[1] as f64).max(1.0);
        let mut p = Probe {
            plan,
            scale: whole * mm.k as f64 / short.k.max(1) as f64,
            fixed,
            compile,
            estimate: f64::INFINITY,
        };
        p.estimate = p.again(g)?;
        Ok(p)
    }

    /// The fastest wall time of one dispatch of `mm` in `form`, in seconds: the better of two
    /// submits of back-to-back dispatches lasting about TARGET each by the probe's `estimate`
    /// (one, when it took over [`NEAR`] times `best`). The probe was the warm-up: the shader is
    /// compiled and the buffers touched.
    fn time(
        &self,
        g: &Gpu,
        kernel: Kernel,
        mm: &Mm,
        form: Form,
        estimate: f64,
        best: f64,
    ) -> Result<f64> {
        let plan = self.plan(g, kernel, mm, form, g.kernels.groups(form, mm.m, mm.n))?;
        let reps = ((TARGET.as_secs_f64() / estimate.max(1e-7)) as usize).clamp(1, 64);
        let first = run(g, &plan, reps)?;
        if first > NEAR * best {
            return Ok(first);
        }
        Ok(first.min(run(g, &plan, reps)?))
    }

    /// The one-dispatch plan of `mm` in `form` over these buffers.
    fn plan(&self, g: &Gpu, kernel: Kernel, mm: &Mm, form: Form, groups: [u32; 3]) -> Result<Plan> {
        let input = form == Form::Input;
        let (xu, du) = if input {
            (&self.xu, &self.du)
        } else {
            (&g.no_uniform, &g.no_uniform)
        };
        // matmul_backward_weight's Input form reads dout from its uniform array, bound as `a` too.
        let a = if input && kernel == Kernel::MatmulBackwardWeight {
            &self.du
        } else {
            &self.bufs[1]
        };
        let mut pb = PlanBuilder::new(&g.ctx, &g.kernels, "tune");
        pb.push(
            format!("tune {}", mm.key(kernel)),
            kernel,
            &[
                &self.bufs[0],
                a,
                &self.bufs[2],
                &self.bufs[3],
                xu,
                du,
                &g.no_uniform,
            ],
            words(&mm.uniform()),
            groups,
        );
        pb.set_form(form);
        pb.build()
    }
}

/// A form's probe: its plan, and its time scaled to the whole product.
struct Probe {
    plan: Plan,
    /// Whole product / probed part, in work.
    scale: f64,
    /// Seconds: a near-empty dispatch of the form (its fixed cost), and its first run.
    fixed: f64,
    compile: f64,
    estimate: f64,
}

impl Probe {
    /// One more run of the part, scaled to the whole, in seconds.
    fn again(&self, g: &Gpu) -> Result<f64> {
        let work = (run(g, &self.plan, 1)? - self.fixed).max(0.0);
        Ok(self.fixed + work * self.scale)
    }
}

/// Seconds per dispatch of `reps` back-to-back runs of `plan`'s one dispatch, in one submit.
fn run(g: &Gpu, plan: &Plan, reps: usize) -> Result<f64> {
    plan.time_repeated(&g.ctx, &g.kernels, 0, reps)
}
