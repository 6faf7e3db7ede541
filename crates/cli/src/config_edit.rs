//! Changing `$TILLER_HOME/config.toml` from a command (`tiller mcp add`,
//! `tiller mcp remove`) without losing what the person wrote in it.
//!
//! Three promises, each for a reason:
//!
//! - **The rest of the file stays as it was.** The text is edited as a TOML
//!   document (`toml_edit`), not read into values and written out again, so
//!   comments, key order, quoting and blank lines outside the edited table
//!   survive.
//! - **Nothing is written that tiller would refuse to load.** The new text
//!   is loaded by the real config loader first; a change that would break
//!   the next `tiller exec` is reported, naming the key, and dropped.
//! - **A failure leaves the old file whole.** The new text goes to a new
//!   file beside the old one, is flushed to disk, and is renamed over it:
//!   a full disk, a read-only folder or a crash half-way leaves either the
//!   old file or the new one, never a mix.
//!
//! The loader reads `<home>/config.toml` and nothing else, so the new text
//! is written as `config.toml` in a fresh folder beside the real file: that
//! one file is both what is checked and what is renamed into place (the
//! same filesystem, so the rename is atomic). A symlinked config file (a
//! dotfiles checkout) is edited where it points, so the link survives.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tiller_core::config::{Config, ConfigOverrides};
use toml_edit::DocumentMut;

/// The config file's name inside the tiller home (as the loader names it).
const CONFIG_FILE_NAME: &str = "config.toml";
/// The mode of a config file tiller creates: it may hold secrets (`env`).
const NEW_FILE_MODE: u32 = 0o600;

/// The config file, read and parsed, ready to be edited and saved.
pub struct ConfigFile {
    /// The path as the person knows it, `$TILLER_HOME/config.toml`; messages name it.
    shown: PathBuf,
    /// The file that is replaced: `shown`, or where it points if it is a symlink.
    target: PathBuf,
    /// The mode of the existing file, kept by the new one; `None`: there is no file yet.
    mode: Option<u32>,
    /// The parsed text.
    document: DocumentMut,
}

impl ConfigFile {
    /// Reads the config file of `tiller_home`; a missing file is an empty
    /// document (saving creates it). A file that is not valid TOML is an
    /// error naming its line: it is not edited, so nothing in it is lost.
    pub fn open(tiller_home: &Path) -> anyhow::Result<ConfigFile> {
        let shown = tiller_home.join(CONFIG_FILE_NAME);
        let metadata = match std::fs::symlink_metadata(&shown) {
            Ok(metadata) => Some(metadata),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", shown.display()));
            }
        };
        let Some(metadata) = metadata else {
            return Ok(ConfigFile {
                target: shown.clone(),
                shown,
                mode: None,
                document: DocumentMut::new(),
            });
        };

        let target = if metadata.file_type().is_symlink() {
            std::fs::canonicalize(&shown).with_context(|| {
                format!(
                    "{} is a symlink that leads nowhere: fix the link or remove it",
                    shown.display()
                )
            })?
        } else {
            shown.clone()
        };
        let metadata = std::fs::metadata(&target)
            .with_context(|| format!("cannot read {}", target.display()))?;
        if !metadata.is_file() {
            anyhow::bail!(
                "{} is not a regular file: tiller edits only a plain config file",
                shown.display()
            );
        }
        let text = std::fs::read_to_string(&target)
            .with_context(|| format!("cannot read {}", shown.display()))?;
        let document = text.parse::<DocumentMut>().map_err(|error| {
            let line = error.span().map_or(1, |span| line_of(&text, span.start));
            anyhow::anyhow!(
                "{}:{line}: invalid TOML: {}; fix it by hand (it was left as it is)",
                shown.display(),
                error.message()
            )
        })?;
        Ok(ConfigFile {
            shown,
            target,
            mode: Some(metadata.permissions().mode() & 0o7777),
            document,
        })
    }

    /// The config file's path, as messages should name it.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// The document, to read.
    pub fn document(&self) -> &DocumentMut {
        &self.document
    }

    /// The document, to edit; nothing reaches the disk before [`ConfigFile::save`].
    pub fn document_mut(&mut self) -> &mut DocumentMut {
        &mut self.document
    }

    /// Checks the edited document with the config loader and, if it loads,
    /// puts it in place of the old file atomically (see the module docs).
    /// On any error the old file is untouched and nothing is left behind.
    pub fn save(self) -> anyhow::Result<()> {
        let folder = match self.target.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
            Some(_) | None => PathBuf::from("."),
        };
        let unchanged = || match self.mode {
            Some(_) => format!("{} is unchanged", self.shown.display()),
            None => format!("{} was not created", self.shown.display()),
        };
        std::fs::create_dir_all(&folder).with_context(|| {
            format!(
                "cannot create the tiller home {}; {}",
                folder.display(),
                unchanged()
            )
        })?;
        // Removed, with whatever is in it, when this function returns.
        let staging = tempfile::Builder::new()
            .prefix(".config.toml.")
            .tempdir_in(&folder)
            .with_context(|| {
                format!(
                    "cannot write in {} (is it read-only?); {}",
                    folder.display(),
                    unchanged()
                )
            })?;
        let staged = staging.path().join(CONFIG_FILE_NAME);
        let text = self.document.to_string();
        write_synced(&staged, &text, self.mode.unwrap_or(NEW_FILE_MODE)).with_context(|| {
            format!(
                "cannot write the new config in {} (is the disk full?); {}",
                folder.display(),
                unchanged()
            )
        })?;
        check(staging.path(), &staged, &self.shown, &folder).map_err(|message| {
            anyhow::anyhow!(
                "the change was not written, because with it the config would not load: {message}"
            )
        })?;
        std::fs::rename(&staged, &self.target).with_context(|| {
            format!("cannot replace {}; {}", self.target.display(), unchanged())
        })?;
        // The rename is done; syncing the folder only makes it survive a
        // power cut, so a failure here is worth a warning, not an error.
        if let Err(error) = std::fs::File::open(&folder).and_then(|dir| dir.sync_all()) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: {} was written, but flushing {} failed: {error}",
                self.shown.display(),
                folder.display()
            );
        }
        Ok(())
    }
}

/// Writes `text` to a new file `path` with `mode`, and waits until it is on disk.
fn write_synced(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    // `mode` above is narrowed by the umask; the old file's mode is kept exactly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Loads the staged file in `staging` as tiller would, with no environment
/// (the file alone must be valid, whatever the shell has set); the error,
/// if any, names `shown` instead of the staged copy.
fn check(staging: &Path, staged: &Path, shown: &Path, cwd: &Path) -> Result<(), String> {
    let overrides = ConfigOverrides {
        cwd: Some(cwd.to_owned()),
        ..ConfigOverrides::default()
    };
    match Config::load_with_env(staging, overrides, &|_| None) {
        Ok(_) => Ok(()),
        Err(error) => Err(error
            .to_string()
            .replace(&staged.display().to_string(), &shown.display().to_string())),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
