//! Progress of a child process, as lines on its stderr: how `run --workers N` draws one
//! bar per running run, and how the portal shows the training of its default models.

/// Set in a child's environment: the child reports each epoch on stderr as a
/// [`progress_line`].
pub const PROGRESS_ENV: &str = "CROSSOMICS_PROGRESS_LINES";
const PROGRESS_TAG: &str = "@crossomics-progress";

/// The line a child prints for epoch `position` of `total`.
pub fn progress_line(position: usize, total: usize, message: &str) -> String {
    format!("{PROGRESS_TAG} {position} {total} {message}")
}

/// `(position, total, message)` of a progress line; `None` for any other line.
pub fn parse_progress(line: &str) -> Option<(u64, u64, &str)> {
    let rest = line.strip_prefix(PROGRESS_TAG)?.strip_prefix(' ')?;
    let mut parts = rest.splitn(3, ' ');
    let position = parts.next()?.parse().ok()?;
    let total = parts.next()?.parse().ok()?;
    Some((position, total, parts.next().unwrap_or("")))
}
