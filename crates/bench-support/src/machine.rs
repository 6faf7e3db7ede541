//! What else the machine did while a bench ran. On 2 shared cores, other
//! people's builds decide every p99, so each bench says how much CPU they took.

use std::time::Instant;

/// The 1-, 5- and 15-minute load averages, as `/proc/loadavg` writes them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first `model name` of `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

/// How much other work shared the machine since [`OtherLoad::start`]: the
/// machine's busy CPU time (`/proc/stat`) minus this process's and its reaped
/// children's (`/proc/self/stat`), both in clock ticks of 10 ms (`USER_HZ` is
/// 100 on x86-64 and arm64). A child that is still running when the reading
/// is taken (an app-server under test) counts as "other".
pub struct OtherLoad {
    started: Instant,
    machine: [u64; 2],
    own: u64,
    load_before: String,
}

/// What [`OtherLoad::measure`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct OtherLoadReading {
    /// Seconds since the start.
    pub secs: f64,
    /// CPUs' worth of busy time that was not this process's.
    pub other_cpus: f64,
    /// CPUs' worth of time the hypervisor took.
    pub steal_cpus: f64,
    /// Load average at the start.
    pub load_before: String,
    /// Load average now.
    pub load_after: String,
}

impl OtherLoad {
    /// Take the first reading.
    pub fn start() -> OtherLoad {
        OtherLoad {
            started: Instant::now(),
            machine: machine_ticks(),
            own: own_ticks(),
            load_before: load_average(),
        }
    }

    /// Take the second reading.
    pub fn measure(&self) -> OtherLoadReading {
        let [busy, steal] = machine_ticks();
        let other = busy
            .saturating_sub(self.machine[0])
            .saturating_sub(own_ticks().saturating_sub(self.own));
        let secs = self.started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let cpus = |ticks: u64| ticks as f64 / 100.0 / secs.max(1e-9);
        OtherLoadReading {
            secs,
            other_cpus: cpus(other),
            steal_cpus: cpus(steal.saturating_sub(self.machine[1])),
            load_before: self.load_before.clone(),
            load_after: load_average(),
        }
    }
}

impl std::fmt::Display for OtherLoadReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "other processes used {:.2} CPUs on average during the {:.0} s run (hypervisor steal {:.2} CPUs); load average {} before, {} after",
            self.other_cpus, self.secs, self.steal_cpus, self.load_before, self.load_after
        )
    }
}

/// Busy (user, nice, system, irq, softirq) and steal ticks of all CPUs.
fn machine_ticks() -> [u64; 2] {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    [
        field(0) + field(1) + field(2) + field(5) + field(6),
        field(7),
    ]
}

/// utime + stime + cutime + cstime of this process.
fn own_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Fields 14 to 17 of the whole line are 12 to 15 after the name.
    after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum()
}
