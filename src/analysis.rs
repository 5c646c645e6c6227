//! Per-sample results of a model on the CPU: class probabilities, the confusion matrix and the
//! most confident mistakes. Pure functions over data already in memory.

use crate::cpu::{Workspace, forward, gather};
use crate::data::Dataset;
use crate::model::ModelSpec;

/// Rows per forward pass: big enough to amortise the matmul, small enough to stay in cache.
const ROWS: usize = 1000;

/// Softmax of the model's outputs (`[classes]` each) for each row of `x` (`[n, inputs]`, as the
/// model sees them). For a model trained with MSE the outputs are not log-probabilities; their
/// softmax still ranks the classes.
pub fn probabilities(spec: &ModelSpec, params: &[f32], x: &[f32]) -> Vec<Vec<f32>> {
    let w = spec.inputs();
    let n = x.len() / w;
    let mut ws = Workspace::new(spec, ROWS.min(n.max(1)));
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(ws.rows) {
        let b = ws.rows.min(n - start);
        ws.activations[0][..b * w].copy_from_slice(&x[start * w..(start + b) * w]);
        ws.labels[..b].fill(0);
        out.extend(logits_to_probs(spec, params, &mut ws, b));
    }
    out
}

/// [`probabilities`] for every sample of a data set, without converting it all to f32 at once.
pub fn dataset_probabilities(spec: &ModelSpec, params: &[f32], data: &Dataset) -> Vec<Vec<f32>> {
    let n = data.len();
    let order: Vec<u32> = (0..n as u32).collect();
    let mut ws = Workspace::new(spec, ROWS.min(n.max(1)));
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(ws.rows) {
        let b = ws.rows.min(n - start);
        gather(&mut ws, data, &order, start, b);
        out.extend(logits_to_probs(spec, params, &mut ws, b));
    }
    out
}

fn logits_to_probs(
    spec: &ModelSpec,
    params: &[f32],
    ws: &mut Workspace,
    b: usize,
) -> Vec<Vec<f32>> {
    forward(spec, params, ws, b, None);
    let c = spec.classes();
    let logits = &ws.activations[spec.sizes.len() - 1][..b * c];
    logits.chunks_exact(c).map(softmax).collect()
}

/// The model's raw outputs [n, classes] for rows `x` [n, inputs].
pub fn logits(spec: &ModelSpec, params: &[f32], x: &[f32]) -> Vec<f32> {
    let w = spec.inputs();
    let n = x.len() / w;
    let c = spec.classes();
    let mut ws = Workspace::new(spec, ROWS.min(n.max(1)));
    let mut out = Vec::with_capacity(n * c);
    for start in (0..n).step_by(ws.rows) {
        let b = ws.rows.min(n - start);
        ws.activations[0][..b * w].copy_from_slice(&x[start * w..(start + b) * w]);
        ws.labels[..b].fill(0);
        forward(spec, params, &mut ws, b, None);
        out.extend_from_slice(&ws.activations[spec.sizes.len() - 1][..b * c]);
    }
    out
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p = vec![0.0; row.len()];
    let mut sum = 0.0;
    for (o, &v) in p.iter_mut().zip(row) {
        *o = (v - max).exp();
        sum += *o;
    }
    p.iter_mut().for_each(|v| *v /= sum);
    p
}

/// The predicted class: the first maximum, as `argmax_correct` counts it.
pub fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for j in 1..p.len() {
        if p[j] > p[best] {
            best = j;
        }
    }
    best
}

/// The classes in order of probability, highest first.
pub fn ranked(p: &[f32]) -> Vec<(usize, f32)> {
    let mut r: Vec<(usize, f32)> = p.iter().copied().enumerate().collect();
    r.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    r
}

/// `counts[true][predicted]`: `[classes][classes]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confusion {
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    /// From each sample's label and class probabilities (`[classes]` each).
    pub fn new(labels: &[u8], probs: &[Vec<f32>]) -> Self {
        let c = probs.first().map_or(0, Vec::len);
        let mut counts = vec![vec![0u64; c]; c];
        for (&l, p) in labels.iter().zip(probs) {
            counts[l as usize % c][argmax(p)] += 1;
        }
        Confusion { counts }
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn correct(&self) -> u64 {
        (0..self.classes()).map(|c| self.counts[c][c]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        self.correct() as f64 / self.total().max(1) as f64
    }

    /// Of the samples of class `c`, the fraction predicted `c`; None when there are none.
    pub fn recall(&self, c: usize) -> Option<f64> {
        let row: u64 = self.counts[c].iter().sum();
        (row > 0).then(|| self.counts[c][c] as f64 / row as f64)
    }

    /// Of the samples predicted `c`, the fraction that are `c`; None when none was.
    pub fn precision(&self, c: usize) -> Option<f64> {
        let col: u64 = (0..self.classes()).map(|t| self.counts[t][c]).sum();
        (col > 0).then(|| self.counts[c][c] as f64 / col as f64)
    }

    /// The matrix as a text table, recall per row and precision per column.
    pub fn table(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}%", 100.0 * v));
        let mut s = String::from("rows: true class, columns: predicted class\n");
        s.push_str("true\\pred");
        let n = self.classes();
        for c in 0..n {
            s.push_str(&format!("{c:>7}"));
        }
        s.push_str("   recall\n");
        for t in 0..n {
            s.push_str(&format!("{t:>9}"));
            for p in 0..n {
                s.push_str(&format!("{:>7}", self.counts[t][p]));
            }
            s.push_str(&format!("{:>9}\n", pct(self.recall(t))));
        }
        s.push_str("precision");
        for c in 0..n {
            s.push_str(&format!("{:>7}", pct(self.precision(c))));
        }
        s.push_str(&format!(
            "\naccuracy {:.2}% ({} of {})\n",
            100.0 * self.accuracy(),
            self.correct(),
            self.total()
        ));
        s
    }
}

/// A misclassified sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Mistake {
    /// Index in the data set.
    pub index: usize,
    pub label: usize,
    pub predicted: usize,
    /// The probability given to `predicted`.
    pub probability: f32,
}

/// The `n` misclassified samples the model was surest of, surest first (ties by index).
pub fn confident_mistakes(labels: &[u8], probs: &[Vec<f32>], n: usize) -> Vec<Mistake> {
    let mut m: Vec<Mistake> = labels
        .iter()
        .zip(probs)
        .enumerate()
        .filter_map(|(index, (&l, p))| {
            let predicted = argmax(p);
            (predicted != l as usize).then_some(Mistake {
                index,
                label: l as usize,
                predicted,
                probability: p[predicted],
            })
        })
        .collect();
    m.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then(a.index.cmp(&b.index))
    });
    m.truncate(n);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(c: usize, p: f32) -> Vec<f32> {
        let mut v = vec![(1.0 - p) / 9.0; 10];
        v[c] = p;
        v
    }

    #[test]
    fn confusion_counts_and_rates() {
        let labels = [0, 0, 1, 1, 1];
        let probs = [
            one_hot(0, 0.9),
            one_hot(1, 0.8),
            one_hot(1, 0.7),
            one_hot(1, 0.6),
            one_hot(0, 0.5),
        ];
        let c = Confusion::new(&labels, &probs);
        assert_eq!(c.counts[0][0], 1);
        assert_eq!(c.counts[0][1], 1);
        assert_eq!(c.counts[1][1], 2);
        assert_eq!(c.counts[1][0], 1);
        assert_eq!(c.total(), 5);
        assert_eq!(c.correct(), 3);
        assert_eq!(c.recall(1), Some(2.0 / 3.0));
        assert_eq!(c.precision(0), Some(0.5));
        assert_eq!(c.recall(5), None);
        assert!(c.table().contains("accuracy 60.00% (3 of 5)"));
    }

    #[test]
    fn mistakes_are_wrong_and_surest_first() {
        let labels = [3, 3, 3, 3];
        let probs = [
            one_hot(5, 0.6),
            one_hot(3, 0.99),
            one_hot(8, 0.9),
            one_hot(1, 0.6),
        ];
        let m = confident_mistakes(&labels, &probs, 10);
        let idx: Vec<usize> = m.iter().map(|m| m.index).collect();
        assert_eq!(idx, [2, 0, 3]);
        assert_eq!(m[0].predicted, 8);
        assert_eq!(confident_mistakes(&labels, &probs, 1).len(), 1);
    }

    #[test]
    fn softmax_sums_to_one_and_ranks() {
        let p = softmax(&[1.0, 3.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&p), 1);
        let r = ranked(&p);
        assert_eq!((r[0].0, r[1].0), (1, 2));
    }
}
