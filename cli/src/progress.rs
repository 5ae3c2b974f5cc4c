//! Progress bars: bytes (with rate and ETA) and files, drawn on stderr only when stderr is
//! a terminal and `--json` is off. Otherwise the bars are hidden and cost nothing, so CI
//! logs stay clean.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

#[derive(Clone)]
pub struct Progress {
    pub bytes: ProgressBar,
    pub files: ProgressBar,
}

/// Whether bars are drawn: stderr is a terminal and output is for a person.
pub fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal()
}

impl Progress {
    pub fn new(draw: bool, verb: &str, total_bytes: u64, total_files: u64) -> Progress {
        if !draw {
            return Progress {
                bytes: ProgressBar::hidden(),
                files: ProgressBar::hidden(),
            };
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let bytes = multi.add(ProgressBar::new(total_bytes));
        bytes.set_style(
            ProgressStyle::with_template(
                "{msg:9} [{bar:32}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bytes.set_message(verb.to_string());
        let files = multi.add(ProgressBar::new(total_files));
        files.set_style(
            ProgressStyle::with_template("{msg:9} {pos}/{len} files {per_sec}")
                .expect("static template"),
        );
        files.set_message("");
        Progress { bytes, files }
    }

    /// A line on stderr, above the bars when they are drawn (a hidden bar prints nothing).
    pub fn note(&self, line: String) {
        if self.bytes.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bytes.println(line);
        }
    }

    /// Leaves the final state drawn (not cleared), so a terminal keeps the summary.
    pub fn finish(&self) {
        self.bytes.finish();
        self.files.finish();
    }
}
