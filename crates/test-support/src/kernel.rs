//! A kernel without Landlock, for a test: a seccomp filter installed in a
//! child before it runs tiller makes `landlock_create_ruleset` fail with
//! `ENOSYS`, as on a kernel built without it. tiller must then say so and
//! refuse to run commands under a sandbox it cannot enforce.

use std::io;

use nix::libc;

/// Make `command`'s process (and everything it starts) see no Landlock.
/// x86_64 only, as tiller's own filter.
pub fn hide_landlock(command: &mut tokio::process::Command) {
    let filter = no_landlock_filter();
    // SAFETY: two prctl calls on a program the closure owns: system calls
    // only, async-signal-safe, nothing allocated between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as libc::c_ushort,
                filter: filter.as_ptr().cast_mut(),
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const program,
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `landlock_create_ruleset` → `ENOSYS`; everything else allowed.
fn no_landlock_filter() -> Vec<libc::sock_filter> {
    let statement = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump_if = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    // Offset of `nr` in `struct seccomp_data`.
    let nr_offset = 0;
    vec![
        statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, nr_offset),
        jump_if(libc::SYS_landlock_create_ruleset as u32, 0, 1),
        statement(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}
