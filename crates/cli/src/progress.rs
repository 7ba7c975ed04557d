//! Progress bars (indicatif) on standard error; drawn only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars on standard error when it is a terminal.
    Bars,
    /// Nothing (tests, `--quiet`).
    Hidden,
}

impl ProgressMode {
    /// A bar counting bytes up to `total`.
    #[must_use]
    pub fn bytes(self, total: u64, label: &str) -> ProgressBar {
        self.bar(
            total,
            label,
            "{prefix:>12} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
    }

    /// A bar counting chunks up to `total`.
    #[must_use]
    pub fn chunks(self, total: u64, label: &str) -> ProgressBar {
        self.bar(
            total,
            label,
            "{prefix:>12} [{bar:32}] {pos}/{len} chunks {per_sec} eta {eta} {msg}",
        )
    }

    fn bar(self, total: u64, label: &str, template: &str) -> ProgressBar {
        let target = match self {
            Self::Bars => ProgressDrawTarget::stderr(),
            Self::Hidden => ProgressDrawTarget::hidden(),
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar
    }
}
