//! What `tiller exec` draws on a terminal besides plain lines: a status line at
//! the bottom of stderr (a spinner and what tiller is waiting for) with the last
//! lines of a running command's output above it, redrawn in place.
//!
//! Everything else is printed above the area ([`StatusArea::print`]); before
//! the answer is written to stdout (the same terminal, usually) the area is
//! hidden, so the two never interleave. A ticker thread redraws the spinner
//! and the elapsed time; a mutex makes the ticker and the event loop take
//! turns at the terminal.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";
const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const TICK: Duration = Duration::from_millis(100);

/// The width of the terminal on `fd`, if it is one.
pub(crate) fn columns(fd: i32) -> Option<usize> {
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which
    // points to a valid, writable `winsize` for the duration of the call.
    #[allow(unsafe_code)]
    let ok = unsafe { nix::libc::ioctl(fd, nix::libc::TIOCGWINSZ, &raw mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// How many terminal rows `text` takes when printed from the start of a row
/// on a terminal `cols` wide (the last row is the one the cursor ends on).
pub(crate) fn rows(text: &str, cols: usize) -> usize {
    text.split('\n')
        .map(|line| line.chars().count().div_ceil(cols.max(1)).max(1))
        .sum()
}

/// Whether colour may be used on stderr: it is a terminal and `NO_COLOR` is
/// unset or empty (<https://no-color.org>).
pub(crate) fn stderr_colour() -> bool {
    io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The status line and live output at the bottom of stderr.
pub(crate) struct StatusArea {
    area: Arc<Mutex<Area>>,
    stop: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

struct Area {
    /// What tiller waits for, and since when.
    status: Option<(String, Instant)>,
    /// The last lines of a running command's output.
    live: Vec<String>,
    /// Rows drawn now (the cursor is at the end of the last one).
    drawn: usize,
    hidden: bool,
    frame: usize,
    colour: bool,
}

impl Area {
    fn erase(&mut self, out: &mut impl Write) {
        if self.drawn > 0 {
            let _ = write!(out, "\r");
            if self.drawn > 1 {
                let _ = write!(out, "\x1b[{}A", self.drawn - 1);
            }
            let _ = write!(out, "\x1b[J");
            self.drawn = 0;
        }
    }

    fn draw(&mut self, out: &mut impl Write) {
        self.erase(out);
        if self.hidden {
            return;
        }
        let cols = columns(2).unwrap_or(80);
        let (dim, reset) = if self.colour { (DIM, RESET) } else { ("", "") };
        let mut rows = Vec::new();
        for line in &self.live {
            rows.push(format!(
                "{dim}  {}{reset}",
                fit(line, cols.saturating_sub(3))
            ));
        }
        if let Some((label, since)) = &self.status {
            let frame = FRAMES[self.frame % FRAMES.len()];
            let secs = since.elapsed().as_secs();
            let text = fit(
                &format!("{frame} {label} {secs}s · ctrl+c to interrupt"),
                cols.saturating_sub(1),
            );
            rows.push(format!("{dim}{text}{reset}"));
        }
        if rows.is_empty() {
            return;
        }
        let _ = write!(out, "{}", rows.join("\n"));
        let _ = out.flush();
        self.drawn = rows.len();
    }
}

/// `text` cut to `width` characters, control characters shown as `?`.
fn fit(text: &str, width: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(width)
        .collect();
    if text.chars().count() > width && width > 0 {
        out.pop();
        out.push('…');
    }
    out
}

impl StatusArea {
    /// An area on stderr, if stderr is a terminal.
    pub(crate) fn start(colour: bool) -> Option<StatusArea> {
        if !io::stderr().is_terminal() {
            return None;
        }
        let area = Arc::new(Mutex::new(Area {
            status: None,
            live: Vec::new(),
            drawn: 0,
            hidden: false,
            frame: 0,
            colour,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let area = Arc::clone(&area);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("tiller-status".to_string())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        std::thread::park_timeout(TICK);
                        let mut area = lock(&area);
                        if area.status.is_some() && !area.hidden {
                            area.frame += 1;
                            area.draw(&mut io::stderr().lock());
                        }
                    }
                })
                .ok()
        };
        Some(StatusArea { area, stop, ticker })
    }

    /// Show what tiller is waiting for (`None`: nothing).
    pub(crate) fn set_status(&self, status: Option<&str>) {
        let mut area = lock(&self.area);
        area.status = status.map(|label| match &area.status {
            Some((old, since)) if old == label => (old.clone(), *since),
            _ => (label.to_string(), Instant::now()),
        });
        area.draw(&mut io::stderr().lock());
    }

    /// Show these lines of a running command's output.
    pub(crate) fn set_live(&self, lines: Vec<String>) {
        let mut area = lock(&self.area);
        area.live = lines;
        area.draw(&mut io::stderr().lock());
    }

    /// Print `text` (whole lines) on stderr above the area.
    pub(crate) fn print(&self, text: &str) {
        let mut area = lock(&self.area);
        let mut err = io::stderr().lock();
        area.erase(&mut err);
        let _ = write!(err, "{text}");
        area.draw(&mut err);
    }

    /// Take the area off the screen while the answer is written to stdout;
    /// [`StatusArea::show`] brings it back.
    pub(crate) fn hide(&self) {
        let mut area = lock(&self.area);
        area.hidden = true;
        area.erase(&mut io::stderr().lock());
    }

    /// Draw the area again after [`StatusArea::hide`].
    pub(crate) fn show(&self) {
        let mut area = lock(&self.area);
        area.hidden = false;
        area.draw(&mut io::stderr().lock());
    }
}

impl Drop for StatusArea {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(ticker) = self.ticker.take() {
            ticker.thread().unpark();
            let _ = ticker.join();
        }
        let mut area = lock(&self.area);
        area.erase(&mut io::stderr().lock());
    }
}

fn lock(area: &Mutex<Area>) -> MutexGuard<'_, Area> {
    // Plain drawing state: a panic while drawing leaves nothing inconsistent.
    area.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_wrapped_lines_and_the_line_the_cursor_is_on() {
        assert_eq!(rows("abc", 80), 1);
        assert_eq!(rows("", 80), 1);
        assert_eq!(rows("abc\n", 80), 2);
        assert_eq!(rows(&"x".repeat(81), 80), 2);
        assert_eq!(rows(&format!("{}\nshort", "x".repeat(160)), 80), 3);
    }

    #[test]
    fn fitted_lines_show_no_control_characters() {
        assert_eq!(fit("a\x1b[2Kb", 10), "a?[2Kb");
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}
