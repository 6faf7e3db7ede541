//! Confining a tool's process: Landlock for the file system, a seccomp filter
//! for the network.
//!
//! A [`Sandbox`] is a policy: [`Sandbox::ReadOnly`], [`Sandbox::WorkspaceWrite`]
//! or [`Sandbox::FullAccess`]. Under the first two, the process may read and
//! execute anything, but write only beneath the writable roots (none under
//! `ReadOnly`) and to a few harmless devices (`/dev/null`, `/dev/zero`,
//! `/dev/full`, `/dev/tty`, `/dev/random`, `/dev/urandom`); it may not open a
//! socket other than `AF_UNIX` unless the policy allows the network, nor use
//! `io_uring` (whose operations no seccomp filter sees).
//!
//! # Why it is built in the parent
//!
//! Everything a child runs between `fork` and `exec` must be
//! async-signal-safe: tiller is multi-threaded, and a lock some other thread
//! held at the fork is held forever in the child. So [`Sandbox::prepare`]
//! does the work in tiller: it creates the Landlock ruleset, opens each path
//! with `O_PATH` and adds its rule, and assembles the BPF program. The child
//! only makes three system calls on what it inherited, allocating nothing:
//! `prctl(PR_SET_NO_NEW_PRIVS)`, `landlock_restrict_self` on the ruleset's
//! file descriptor, and `prctl(PR_SET_SECCOMP)` with a pointer into the
//! program. The seccomp filter goes last, so it cannot get in the way of the
//! calls before it. A failed call fails the spawn: a process never runs with
//! less confinement than its policy asks for.
//!
//! # What Landlock must offer
//!
//! [`Sandbox::check`] says whether the kernel can enforce a policy, and
//! [`Sandbox::prepare`] refuses one it cannot. Landlock must be enabled and
//! speak ABI 3 (Linux 6.2) at least: before it, `truncate(2)` on a file outside
//! the writable roots is not controlled. Every file-system right the kernel's
//! ABI knows is handled (`REFER` from ABI 2, so a link or rename cannot move a
//! file to where it gains rights; `IOCTL_DEV` from ABI 5), and granted only as
//! above. Landlock also forbids a confined process to mount or unmount,
//! whatever its capabilities.
//!
//! # What is not confined
//!
//! - `AF_UNIX` sockets, so a process can talk to any server listening on a
//!   Unix socket it can reach (a proxy could give it the network), and signals
//!   to processes outside the sandbox.
//! - Writes through file descriptors it inherited, such as its stdout.
//! - On x86_64, the filter is written for the 64-bit ABI: a 32-bit (`int 0x80`)
//!   system call kills the process, and x32 calls fail with `EPERM`. On other
//!   architectures there is no filter yet, and confined policies are refused.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::libc;

/// What a tool's process may do (see the module's doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sandbox {
    /// Read and execute anywhere, write nowhere, no network.
    ReadOnly,
    /// Read and execute anywhere, write beneath `writable_roots`, and the
    /// network only if `network`.
    WorkspaceWrite {
        /// The folders (or files) beneath which it may write.
        writable_roots: Vec<PathBuf>,
        /// Whether it may open sockets other than `AF_UNIX`.
        network: bool,
    },
    /// No confinement.
    FullAccess,
}

/// Why [`Sandbox::prepare`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel cannot enforce the policy (see [`Sandbox::check`]).
    #[error("{0}")]
    Unsupported(String),
    /// A path of the policy cannot be opened.
    #[error("cannot open {} for the sandbox: {source}", path.display())]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A Landlock system call failed.
    #[error("Landlock: {what}: {source}")]
    Landlock {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: io::Error,
    },
}

/// A policy made ready for [`crate::spawn_tool`]: the Landlock ruleset and the
/// seccomp program, built once and usable for any number of spawns.
#[derive(Debug)]
pub struct PreparedSandbox {
    /// `None` under [`Sandbox::FullAccess`] (and then no filter either).
    ruleset: Option<OwnedFd>,
    filter: Vec<libc::sock_filter>,
}

/// The oldest Landlock ABI that can enforce a policy: 3 controls truncation.
pub const MIN_LANDLOCK_ABI: u32 = 3;

impl Sandbox {
    /// Whether this kernel can enforce the policy, and if not, what it lacks.
    /// [`Sandbox::FullAccess`] needs nothing. A caller told no must not run
    /// the command under a weaker policy without saying so.
    pub fn check(&self) -> Result<(), String> {
        if *self == Sandbox::FullAccess {
            return Ok(());
        }
        let abi = *landlock_abi()?;
        if abi < MIN_LANDLOCK_ABI {
            return Err(format!(
                "the kernel's Landlock ABI is {abi}; the sandbox needs ABI {MIN_LANDLOCK_ABI} \
                 (Linux 6.2) to control truncation, so sandboxed modes cannot be enforced \
                 (only danger-full-access can run)"
            ));
        }
        seccomp_support()
    }

    /// Builds the ruleset and the filter (see the module's doc), or says why
    /// the policy cannot be enforced here.
    pub fn prepare(&self) -> Result<PreparedSandbox, SandboxError> {
        let (writable_roots, network): (&[PathBuf], bool) = match self {
            Sandbox::FullAccess => {
                return Ok(PreparedSandbox {
                    ruleset: None,
                    filter: Vec::new(),
                });
            }
            Sandbox::ReadOnly => (&[], false),
            Sandbox::WorkspaceWrite {
                writable_roots,
                network,
            } => (writable_roots, *network),
        };
        self.check().map_err(SandboxError::Unsupported)?;
        let abi = *landlock_abi().map_err(SandboxError::Unsupported)?;
        let Some(arch) = AUDIT_ARCH else {
            return Err(SandboxError::Unsupported(UNSUPPORTED_ARCH.to_owned()));
        };

        let handled = handled_access(abi);
        let ruleset = create_ruleset(handled)?;
        add_rule(&ruleset, Path::new("/"), READ & handled, true)?;
        for device in DEVICES {
            add_rule(&ruleset, Path::new(device), DEVICE & handled, false)?;
        }
        for root in writable_roots {
            add_rule(&ruleset, root, handled, true)?;
        }
        Ok(PreparedSandbox {
            ruleset: Some(ruleset),
            filter: seccomp_filter(arch, network),
        })
    }
}

impl PreparedSandbox {
    /// Confine `command`: the same calls as for [`crate::spawn_tool`] run in
    /// its child before `exec`, or in this process when it is `exec`ed in
    /// place (`CommandExt::exec`, as `tiller sandbox` does).
    pub fn confine(&self, command: &mut std::process::Command) -> io::Result<()> {
        use std::os::unix::process::CommandExt;

        if let Some(hook) = self.child_hook()? {
            // SAFETY: the hook only makes system calls on what it owns (see
            // `child_hook`), so it is safe between fork and exec.
            #[allow(unsafe_code)]
            unsafe {
                command.pre_exec(hook);
            }
        }
        Ok(())
    }

    /// What the child runs between `fork` and `exec`, or `None` when there is
    /// nothing to confine. It allocates nothing and takes no lock; the first
    /// failing call fails the spawn with its errno.
    pub(crate) fn child_hook(
        &self,
    ) -> io::Result<Option<impl FnMut() -> io::Result<()> + Send + Sync + 'static>> {
        let Some(ruleset) = &self.ruleset else {
            return Ok(None);
        };

        // Its own copy (close-on-exec, as the original): the child consumes
        // it, and `self` stays usable for the next spawn.
        let ruleset = ruleset.try_clone()?;
        let filter = self.filter.clone();
        Ok(Some(move || {
            // SAFETY: prctl, landlock_restrict_self and prctl again, on a
            // descriptor and a program owned by this closure: system calls
            // only, async-signal-safe; `last_os_error` does not allocate.
            #[allow(unsafe_code)]
            unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                let program = libc::sock_fprog {
                    // The program is a few instructions long.
                    len: filter.len() as libc::c_ushort,
                    filter: filter.as_ptr().cast_mut(),
                };
                if libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const program,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        }))
    }
}

// Landlock's ABI (include/uapi/linux/landlock.h).
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1 << 0;
const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
const ACCESS_FS_EXECUTE: u64 = 1 << 0;
const ACCESS_FS_WRITE_FILE: u64 = 1 << 1;
const ACCESS_FS_READ_FILE: u64 = 1 << 2;
const ACCESS_FS_READ_DIR: u64 = 1 << 3;
/// `REMOVE_DIR` to `MAKE_SYM`: the rights of ABI 1 that change a folder.
const ACCESS_FS_ABI_1: u64 = (1 << 13) - 1;
const ACCESS_FS_REFER: u64 = 1 << 13;
const ACCESS_FS_TRUNCATE: u64 = 1 << 14;
const ACCESS_FS_IOCTL_DEV: u64 = 1 << 15;
/// The rights that apply to a file (a rule on a non-folder may grant only these).
const FILE_RIGHTS: u64 = ACCESS_FS_EXECUTE
    | ACCESS_FS_WRITE_FILE
    | ACCESS_FS_READ_FILE
    | ACCESS_FS_TRUNCATE
    | ACCESS_FS_IOCTL_DEV;

/// Granted beneath `/`.
const READ: u64 = ACCESS_FS_EXECUTE | ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR;
/// Granted on each of [`DEVICES`].
const DEVICE: u64 =
    ACCESS_FS_READ_FILE | ACCESS_FS_WRITE_FILE | ACCESS_FS_TRUNCATE | ACCESS_FS_IOCTL_DEV;
/// Devices any process may write (those missing here are skipped).
const DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/random",
    "/dev/urandom",
];

/// Every file-system right Landlock ABI `abi` knows.
fn handled_access(abi: u32) -> u64 {
    let mut rights = ACCESS_FS_ABI_1;
    if abi >= 2 {
        rights |= ACCESS_FS_REFER;
    }
    if abi >= 3 {
        rights |= ACCESS_FS_TRUNCATE;
    }
    if abi >= 5 {
        rights |= ACCESS_FS_IOCTL_DEV;
    }
    rights
}

/// The kernel's Landlock ABI version, asked once.
fn landlock_abi() -> Result<&'static u32, String> {
    static ABI: OnceLock<Result<u32, String>> = OnceLock::new();
    ABI.get_or_init(|| {
        // SAFETY: the version query reads no memory (null attributes, size 0).
        #[allow(unsafe_code)]
        let abi = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<libc::c_void>(),
                0usize,
                LANDLOCK_CREATE_RULESET_VERSION,
            )
        };
        if let Ok(abi) = u32::try_from(abi) {
            return Ok(abi);
        }
        let err = io::Error::last_os_error();
        let why = match err.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel was built without Landlock".to_owned(),
            Some(libc::EOPNOTSUPP) => {
                "Landlock is built into the kernel but not enabled (add `landlock` to the \
                 `lsm=` boot parameter)"
                    .to_owned()
            }
            _ => format!("the kernel's Landlock cannot be queried ({err})"),
        };
        Err(format!(
            "{why}, so sandboxed modes cannot be enforced (only danger-full-access can run)"
        ))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether seccomp filters with the actions the filter uses are available.
fn seccomp_support() -> Result<(), String> {
    if AUDIT_ARCH.is_none() {
        return Err(UNSUPPORTED_ARCH.to_owned());
    }
    for action in [libc::SECCOMP_RET_ERRNO, libc::SECCOMP_RET_KILL_PROCESS] {
        // SAFETY: the kernel reads one u32 from `action`, which lives across the call.
        #[allow(unsafe_code)]
        let available = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_GET_ACTION_AVAIL,
                0,
                &raw const action,
            )
        };
        if available != 0 {
            return Err(format!(
                "the kernel cannot filter system calls with seccomp ({}), so sandboxed modes \
                 cannot be enforced (only danger-full-access can run)",
                io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// `struct landlock_ruleset_attr`, as far as the file-system rights go.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

/// `struct landlock_path_beneath_attr` (packed in the kernel's header).
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

fn create_ruleset(handled: u64) -> Result<OwnedFd, SandboxError> {
    let attr = RulesetAttr {
        handled_access_fs: handled,
    };
    // SAFETY: the kernel reads `size_of::<RulesetAttr>()` bytes of `attr`.
    #[allow(unsafe_code)]
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &raw const attr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    let fd = match i32::try_from(fd) {
        Ok(fd) if fd >= 0 => fd,
        _ => {
            return Err(SandboxError::Landlock {
                what: "creating the ruleset",
                source: io::Error::last_os_error(),
            });
        }
    };

    // SAFETY: a new descriptor (close-on-exec) that nothing else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Grants `access` beneath `path`. A missing path is an error if `required`,
/// else skipped.
fn add_rule(
    ruleset: &OwnedFd,
    path: &Path,
    access: u64,
    required: bool,
) -> Result<(), SandboxError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
        .and_then(|file| Ok((file.metadata()?.is_dir(), file)));
    let (is_dir, file): (bool, File) = match opened {
        Ok(opened) => opened,
        Err(err) if !required && err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SandboxError::Path {
                path: path.to_owned(),
                source,
            });
        }
    };
    let attr = PathBeneathAttr {
        allowed_access: if is_dir { access } else { access & FILE_RIGHTS },
        parent_fd: file.as_raw_fd(),
    };
    // SAFETY: the kernel reads `attr`, which lives across the call.
    #[allow(unsafe_code)]
    let added = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            LANDLOCK_RULE_PATH_BENEATH,
            &raw const attr,
            0u32,
        )
    };
    if added != 0 {
        return Err(SandboxError::Landlock {
            what: "adding a rule",
            source: io::Error::other(format!(
                "{}: {}",
                path.display(),
                io::Error::last_os_error()
            )),
        });
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(0xC000_003E); // AUDIT_ARCH_X86_64
#[cfg(not(target_arch = "x86_64"))]
const AUDIT_ARCH: Option<u32> = None;
const UNSUPPORTED_ARCH: &str = "the sandbox's seccomp filter is written for x86_64 only, so \
    sandboxed modes cannot be enforced on this architecture (only danger-full-access can run)";
/// Set in the numbers of x32 system calls.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

// Offsets in `struct seccomp_data`: nr, arch, args[0] (its low half, little-endian).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG0_LOW: u32 = 16;

/// The BPF program: allow everything but `io_uring_setup`, x32 calls and,
/// without `network`, `socket(domain)` for a domain other than `AF_UNIX`
/// (`EPERM`); kill the process on a system call of another architecture.
fn seccomp_filter(arch: u32, network: bool) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code, k, jt, jf| libc::sock_filter { code, jt, jf, k };
    let deny = libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA);

    // The three returns close the program: ALLOW, DENY, KILL. Jumps are
    // relative to the next instruction, so each is written as the number of
    // instructions between it and its target.
    let mut program = vec![
        stmt(LD_W_ABS, DATA_ARCH),
        jump(JEQ, arch, 0, 0), // jf patched: to KILL
        stmt(LD_W_ABS, DATA_NR),
        jump(JGE, X32_SYSCALL_BIT, 0, 0), // jt patched: to DENY
        jump(JEQ, libc::SYS_io_uring_setup as u32, 0, 0), // jt patched: to DENY
    ];
    if !network {
        program.extend([
            jump(JEQ, libc::SYS_socket as u32, 0, 0), // jf patched: to ALLOW
            stmt(LD_W_ABS, DATA_ARG0_LOW),
            jump(JEQ, libc::AF_UNIX as u32, 0, 0), // jt: to ALLOW, jf: to DENY
        ]);
    }
    let allow = program.len();
    let (deny_at, kill) = (allow + 1, allow + 2);
    let to = |from: usize, target: usize| {
        u8::try_from(target - from - 1).unwrap_or(u8::MAX) // a few instructions
    };
    program[1].jf = to(1, kill);
    program[3].jt = to(3, deny_at);
    program[4].jt = to(4, deny_at);
    if !network {
        program[5].jf = to(5, allow);
        program[7].jt = to(7, allow);
        program[7].jf = to(7, deny_at);
    }
    program.extend([
        stmt(RET, libc::SECCOMP_RET_ALLOW),
        stmt(RET, deny),
        stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
    ]);
    program
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_right_of_the_abi_is_handled() {
        assert_eq!(handled_access(1), (1 << 13) - 1);
        assert_eq!(handled_access(3), (1 << 15) - 1);
        assert_eq!(handled_access(5), (1 << 16) - 1);
        assert_eq!(handled_access(7), (1 << 16) - 1);
    }

    #[test]
    fn every_jump_of_the_filter_lands_inside_it() {
        for network in [false, true] {
            let program = seccomp_filter(0xC000_003E, network);
            for (at, insn) in program.iter().enumerate() {
                if insn.code & 0x07 == libc::BPF_JMP as u16 {
                    assert!(at + 1 + usize::from(insn.jt) < program.len());
                    assert!(at + 1 + usize::from(insn.jf) < program.len());
                }
            }
            assert_eq!(
                program.last().map(|insn| insn.k),
                Some(libc::SECCOMP_RET_KILL_PROCESS)
            );
        }
    }
}
