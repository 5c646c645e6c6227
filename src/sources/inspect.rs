//! `descent data inspect SOURCE`: what a source holds, before anyone trains on it.

use super::{Raw, Request, read, stratified_split};
use crate::error::Result;

/// `a, b, c, … (N in all)`, at most `max` items.
pub fn list(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{}, … ({} in all)", items[..max].join(", "), items.len())
    }
}

/// Per column: min, max and the count of missing (NaN) values.
fn ranges(raw: &Raw) -> Vec<(f32, f32, usize)> {
    let w = raw.width.max(1);
    let mut r = vec![(f32::INFINITY, f32::NEG_INFINITY, 0usize); raw.width];
    for row in raw.x.chunks_exact(w) {
        for (c, &v) in r.iter_mut().zip(row) {
            if v.is_nan() {
                c.2 += 1;
            } else {
                c.0 = c.0.min(v);
                c.1 = c.1.max(v);
            }
        }
    }
    r
}

/// The report, as text lines and as JSON.
pub fn report(req: &Request) -> Result<(String, serde_json::Value)> {
    let raw = read(&req.data, &req.read, None)?;
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!("source    {}", req.data.describe()));
    let shape: Vec<String> = raw.shape.iter().map(|d| d.to_string()).collect();
    line(format!(
        "samples   {} ({}{})",
        raw.len(),
        raw.kind(),
        if raw.shape.len() == 3 {
            format!(", {} channels × {} × {}", shape[0], shape[1], shape[2])
        } else {
            String::new()
        }
    ));
    line(format!("features  {}", raw.width));
    if let Some(l) = &raw.label_column {
        line(format!("label     column `{l}`"));
    }
    if !raw.columns.is_empty() && raw.shape.len() == 1 {
        line(format!("columns   {}", list(&raw.columns, 12)));
    }
    let counts = {
        let mut c = vec![0usize; raw.class_names.len()];
        for &l in &raw.labels {
            c[l as usize] += 1;
        }
        c
    };
    line(format!("classes   {}", raw.class_names.len()));
    for (n, c) in raw.class_names.iter().zip(&counts).take(50) {
        line(format!(
            "  {n:<20} {c:>8}  {:5.1}%",
            100.0 * *c as f64 / raw.len().max(1) as f64
        ));
    }
    if raw.class_names.len() > 50 {
        line(format!("  … and {} more", raw.class_names.len() - 50));
    }
    let r = ranges(&raw);
    let lo = r.iter().map(|c| c.0).fold(f32::INFINITY, f32::min);
    let hi = r.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    line(format!("values    {lo} to {hi}"));
    if raw.shape.len() == 1 {
        for (name, c) in raw.columns.iter().zip(&r).take(20) {
            line(format!(
                "  {name:<20} {:>12} to {:<12}{}",
                c.0,
                c.1,
                if c.2 > 0 {
                    format!(" ({} missing)", c.2)
                } else {
                    String::new()
                }
            ));
        }
        if r.len() > 20 {
            line(format!("  … and {} more columns", r.len() - 20));
        }
    }
    let missing: usize = r.iter().map(|c| c.2).sum();
    line(format!(
        "missing   {}{}",
        missing + raw.dropped,
        if raw.dropped > 0 {
            format!(" ({} rows left out by --missing drop)", raw.dropped)
        } else {
            String::new()
        }
    ));
    if !raw.skipped.is_empty() {
        line(format!("skipped   {}", list(&raw.skipped, 5)));
    }
    let split = match &req.test {
        Some(t) => {
            let test = read(
                t,
                &req.read,
                Some(&super::Known {
                    class_names: raw.class_names.clone(),
                    columns: raw.columns.clone(),
                    label_column: raw.label_column.clone(),
                    width: raw.width,
                    shape: raw.shape.clone(),
                    unlabelled: false,
                }),
            )?;
            Ok((raw.len(), test.len(), format!("--test {}", t.describe())))
        }
        None => stratified_split(
            &raw.labels,
            &raw.class_names,
            req.test_split,
            req.seed,
            &raw.path,
        )
        .map(|m| {
            let t = m.iter().filter(|&&x| x).count();
            (
                raw.len() - t,
                t,
                format!(
                    "--test-split {} (stratified, seed {})",
                    req.test_split, req.seed
                ),
            )
        }),
    };
    match &split {
        Ok((tr, te, how)) => line(format!("split     {tr} train, {te} test ({how})")),
        Err(e) => line(format!("split     cannot be made: {e}")),
    }
    let json = serde_json::json!({
        "source": req.data.describe(),
        "samples": raw.len(),
        "features": raw.width,
        "shape": raw.shape,
        "label_column": raw.label_column,
        "columns": raw.columns,
        "classes": raw.class_names.iter().zip(&counts).map(|(n, c)| serde_json::json!({"name": n, "count": c})).collect::<Vec<_>>(),
        "min": lo,
        "max": hi,
        "missing": missing,
        "dropped": raw.dropped,
        "skipped": raw.skipped,
        "train": split.as_ref().ok().map(|s| s.0),
        "test": split.as_ref().ok().map(|s| s.1),
    });
    Ok((out, json))
}
