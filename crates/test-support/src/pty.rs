//! A program in a pseudo-terminal, driven as a person would: keys written to
//! the terminal (Ctrl+C is the byte `0x03`, which the terminal turns into
//! SIGINT for the program), the screen's bytes read back.
//!
//! What the program drew is also fed to a terminal emulator (`vt100`), so a
//! test reads the screen as a person sees it ([`PtyChild::screen`],
//! [`PtyChild::wait_screen`]), whatever escape sequences drew it.
//!
//! The program gets the terminal's other end as stdin, stdout and stderr, in a
//! session of its own with the terminal as its controlling terminal, so job
//! control and signals work as in a real terminal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long [`PtyChild::wait_exit`] waits, after the exit, for the last
/// bytes the program wrote to be read.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// What the program wrote: the bytes, and the screen they drew.
struct Output {
    bytes: Vec<u8>,
    parser: vt100::Parser,
    /// When the bytes last came in.
    last: Instant,
}

/// A child running in a pseudo-terminal.
pub struct PtyChild {
    child: Child,
    master: File,
    screen: Arc<(Mutex<Output>, Condvar)>,
    /// Set when the reader has read everything (EOF or EIO: every holder of
    /// the terminal's other end is gone).
    drained: Arc<AtomicBool>,
}

impl PtyChild {
    /// Start `command` in a new pseudo-terminal of `cols` × `rows`.
    pub fn spawn(mut command: Command, cols: u16, rows: u16) -> PtyChild {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        command
            .stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        // SAFETY: between fork and exec only async-signal-safe calls: setsid
        // and an ioctl making stdin (the terminal) the controlling terminal.
        #[allow(unsafe_code)]
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("spawn in the pty");
        // The parent's copies of the slave are gone with `command`'s Stdio.
        drop(command);
        let master = File::from(pty.master);
        let screen = Arc::new((
            Mutex::new(Output {
                bytes: Vec::new(),
                parser: vt100::Parser::new(rows, cols, 0),
                last: Instant::now(),
            }),
            Condvar::new(),
        ));
        let mut reader = master.try_clone().expect("dup master");
        let shared = Arc::clone(&screen);
        let drained = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&drained);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // EIO once the child and every holder of the slave are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let (lock, ready) = &*shared;
                let mut output = lock.lock().unwrap_or_else(PoisonError::into_inner);
                output.bytes.extend_from_slice(&buf[..n]);
                output.parser.process(&buf[..n]);
                output.last = Instant::now();
                drop(output);
                ready.notify_all();
            }
            let (lock, ready) = &*shared;
            let _screen = lock.lock().unwrap_or_else(PoisonError::into_inner);
            done.store(true, Ordering::Release);
            ready.notify_all();
        });
        PtyChild {
            child,
            master,
            screen,
            drained,
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the program has written to the terminal so far, as text.
    pub fn output(&self) -> String {
        let (lock, _) = &*self.screen;
        String::from_utf8_lossy(&lock.lock().unwrap_or_else(PoisonError::into_inner).bytes)
            .into_owned()
    }

    /// The screen as the terminal shows it now: its rows of text.
    pub fn screen(&self) -> String {
        let (lock, _) = &*self.screen;
        let output = lock.lock().unwrap_or_else(PoisonError::into_inner);
        output.parser.screen().contents()
    }

    /// Whether the program has the alternate screen up, and the cursor hidden.
    pub fn screen_modes(&self) -> (bool, bool) {
        let (lock, _) = &*self.screen;
        let output = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let screen = output.parser.screen();
        (screen.alternate_screen(), screen.hide_cursor())
    }

    /// Whether any character on the screen is drawn in a colour (foreground
    /// or background other than the terminal's default).
    pub fn screen_has_colour(&self) -> bool {
        let (lock, _) = &*self.screen;
        let output = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let screen = output.parser.screen();
        let (rows, cols) = screen.size();
        (0..rows).any(|row| {
            (0..cols).any(|col| {
                screen.cell(row, col).is_some_and(|cell| {
                    cell.fgcolor() != vt100::Color::Default
                        || cell.bgcolor() != vt100::Color::Default
                })
            })
        })
    }

    /// Wait (within `limit`) until the screen satisfies `ready`; returns it.
    pub fn wait_screen(&self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let (lock, changed) = &*self.screen;
        let mut output = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let screen = output.parser.screen().contents();
            if ready(&screen) {
                return screen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {limit:?} for the screen to show {what}; it shows:\n{screen}"
            );
            output = changed
                .wait_timeout(output, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wait (within `limit`) until the screen shows `text`; returns it.
    pub fn wait_screen_shows(&self, text: &str, limit: Duration) -> String {
        self.wait_screen(&format!("{text:?}"), limit, |screen| screen.contains(text))
    }

    /// How many bytes the program has written so far.
    pub fn output_len(&self) -> usize {
        let (lock, _) = &*self.screen;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
            .len()
    }

    /// Wait (within `limit`) until the program has written more than `len`
    /// bytes in all; returns when the first byte past it arrived.
    pub fn wait_output_past(&self, len: usize, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        let (lock, changed) = &*self.screen;
        let mut output = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while output.bytes.len() <= len {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the program wrote nothing within {limit:?}"
            );
            output = changed
                .wait_timeout(output, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        output.last
    }

    /// Change the terminal's size (the program gets SIGWINCH), and the
    /// emulator's with it.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        {
            let (lock, _) = &*self.screen;
            let mut output = lock.lock().unwrap_or_else(PoisonError::into_inner);
            output.parser.screen_mut().set_size(rows, cols);
        }
        // SAFETY: TIOCSWINSZ on the master we own, with a valid winsize.
        #[allow(unsafe_code)]
        let result = unsafe {
            nix::libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&self.master),
                nix::libc::TIOCSWINSZ,
                &size,
            )
        };
        assert_eq!(result, 0, "TIOCSWINSZ failed");
    }

    /// Whether the terminal is in raw mode now (no echo, no line editing):
    /// a program that exited must have put it back.
    pub fn is_raw(&self) -> bool {
        let termios = nix::sys::termios::tcgetattr(&self.master).expect("tcgetattr");
        let local = termios.local_flags;
        !local.contains(nix::sys::termios::LocalFlags::ICANON)
            && !local.contains(nix::sys::termios::LocalFlags::ECHO)
    }

    /// Wait (within `limit`) until the output contains `text`.
    pub fn wait_for(&self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (lock, ready) = &*self.screen;
        let mut screen = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !String::from_utf8_lossy(&screen.bytes).contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "waited {limit:?} for {text:?} on the terminal; it shows:\n{}",
                String::from_utf8_lossy(&screen.bytes)
            );
            screen = ready
                .wait_timeout(screen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Type `keys` (bytes as a terminal sends them: `b"y\r"`, `b"\x03"`).
    pub fn send(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("write to the pty");
    }

    /// Wait (within `limit`) for the child to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The reader needs a moment at most; a process the program
                // left holding the terminal must not hold this up.
                self.wait_drained(deadline.min(Instant::now() + DRAIN_GRACE));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the program did not exit within {limit:?}; the terminal shows:\n{}",
                self.output()
            );
            // The child is not ours to be woken by; its exit is polled.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl PtyChild {
    /// Wait (until `deadline`) for the reader to have read everything the
    /// program wrote before it exited: the last bytes may still be in the
    /// terminal when its exit is seen. A process the program left holding
    /// the terminal keeps it open; then this returns at the deadline.
    fn wait_drained(&self, deadline: Instant) {
        let (lock, ready) = &*self.screen;
        let mut screen = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.drained.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            screen = ready
                .wait_timeout(screen, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
