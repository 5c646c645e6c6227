//! The training loop's per-epoch progress bar: indicatif's on a terminal, nothing where there
//! is none (the browser build), so the loop reads the same on both.

#[cfg(feature = "native")]
pub(crate) use indicatif::ProgressBar as Bar;

/// A bar that shows nothing; `println` still prints, as a hidden indicatif bar's caller does.
#[cfg(not(feature = "native"))]
pub(crate) struct Bar;

#[cfg(not(feature = "native"))]
impl Bar {
    pub(crate) fn hidden() -> Self {
        Bar
    }
    pub(crate) fn is_hidden(&self) -> bool {
        true
    }
    pub(crate) fn set_position(&self, _pos: u64) {}
    pub(crate) fn inc(&self, _n: u64) {}
    pub(crate) fn println(&self, _line: String) {}
    pub(crate) fn finish_and_clear(&self) {}
}

/// The bar for epoch `epoch` of `epochs`, of `steps` steps; hidden unless `show`.
pub(crate) fn epoch_bar(show: bool, steps: usize, epoch: usize, epochs: usize) -> Bar {
    if !show {
        return Bar::hidden();
    }
    #[cfg(feature = "native")]
    {
        let bar = Bar::new(steps as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "epoch {msg} [{bar:40}] {pos}/{len} steps {per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("{epoch}/{epochs}"));
        bar
    }
    #[cfg(not(feature = "native"))]
    {
        let _ = (steps, epoch, epochs);
        Bar::hidden()
    }
}
