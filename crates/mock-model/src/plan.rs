//! Plans: a response body rendered up front, with its pauses and faults.
//!
//! Both wire APIs render a step into a [`Plan`] through a [`PlanWriter`], which
//! counts deltas and puts the step's delays and faults after the right ones.
//! Keeping that count in one place is what makes `drop_after_deltas: 3` cut a
//! Responses stream and a Chat Completions stream after the same three pieces
//! of text, reasoning or arguments. Rendering is pure (no clock, no I/O), so
//! the same step and request always give the same bytes; the body in
//! [`crate::body`] only plays the plan back.

use std::time::Duration;

use bytes::Bytes;

use crate::step::ResponseStep;

/// The line sent by `malformed_after_deltas`.
pub(crate) const MALFORMED_LINE: &[u8] = b"data: {this is not json\n\n";

/// The `created_at` / `created` every response reports; fixed so output is
/// deterministic.
pub(crate) const CREATED_AT: u64 = 1_700_000_000;

/// One piece of a response body as it will be played back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// Bytes to send.
    Bytes(Bytes),
    /// Send nothing for a while.
    Pause(Duration),
    /// Abort the connection once everything before has been written.
    Drop,
    /// Send nothing ever again; keep the connection open.
    Hang,
    /// Send an SSE comment (`: keep-alive`) at this interval, forever: a
    /// connection kept alive with no event in it.
    KeepAlive(Duration),
}

/// A rendered response body.
pub(crate) type Plan = Vec<Segment>;

#[cfg(test)]
impl Segment {
    /// The bytes as text, or a `!pause`-style marker for what is not bytes;
    /// for tests that read a plan.
    pub(crate) fn shown(&self) -> Result<&str, &'static str> {
        match self {
            Segment::Bytes(bytes) => Ok(std::str::from_utf8(bytes).unwrap_or("!not utf-8")),
            Segment::Pause(_) => Err("!pause"),
            Segment::Drop => Err("!drop"),
            Segment::Hang => Err("!hang"),
            Segment::KeepAlive(_) => Err("!keep-alive"),
        }
    }
}

/// What a rendered response needs to know about the request it answers.
#[derive(Debug, Clone)]
pub(crate) struct ResponseMeta {
    /// Step number, counted from 1; used in default ids.
    pub number: usize,
    /// The `model` of the request, echoed back.
    pub model: String,
    /// The request's input tokens as [`crate::tokens`] estimates them, for the
    /// default usage.
    pub input_tokens: u64,
    /// Chat Completions only: the request asked for a usage chunk
    /// (`stream_options.include_usage`).
    pub include_usage: bool,
    /// Responses only: the request asked for reasoning back encrypted
    /// (`include: ["reasoning.encrypted_content"]`).
    pub include_encrypted_reasoning: bool,
}

/// A fault injected after some number of deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    // Declared in the order faults at the same point are played.
    Stall(u64),
    Malformed,
    Drop,
    Hang,
    KeepAlive(u64),
}

/// Builds a plan event by event, counting deltas and inserting faults and
/// delays at the right places. What an event looks like is up to the caller.
pub(crate) struct PlanWriter {
    plan: Plan,
    deltas_sent: usize,
    delta_delay: Duration,
    /// Faults by the delta count they follow, sorted by (count, fault).
    faults: Vec<(usize, Fault)>,
    /// Set once a drop or hang has been written: nothing after it is reachable.
    ended: bool,
}

impl PlanWriter {
    /// A writer with the delays and faults of `step`, whose rendering has
    /// `total_deltas` deltas: a fault asked for after more deltas than there
    /// are happens after the last.
    pub(crate) fn for_step(step: &ResponseStep, total_deltas: usize) -> PlanWriter {
        let mut faults: Vec<(usize, Fault)> = [
            step.stall.map(|s| (s.after_deltas, Fault::Stall(s.ms))),
            step.malformed_after_deltas.map(|n| (n, Fault::Malformed)),
            step.drop_after_deltas.map(|n| (n, Fault::Drop)),
            step.hang_after_deltas.map(|n| (n, Fault::Hang)),
            step.keep_alive_after_deltas
                .map(|k| (k.after_deltas, Fault::KeepAlive(k.every_ms))),
        ]
        .into_iter()
        .flatten()
        .map(|(n, fault)| (n.min(total_deltas), fault))
        .collect();
        faults.sort();
        PlanWriter {
            plan: Vec::new(),
            deltas_sent: 0,
            delta_delay: Duration::from_millis(step.delta_delay_ms),
            faults,
            ended: false,
        }
    }

    /// A writer with no delays and no faults.
    pub(crate) fn plain() -> PlanWriter {
        PlanWriter {
            plan: Vec::new(),
            deltas_sent: 0,
            delta_delay: Duration::ZERO,
            faults: Vec::new(),
            ended: false,
        }
    }

    /// Whether a drop, hang or keep-alive has been written: later events are
    /// unreachable and ignored.
    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }

    /// Append an event that is not a delta.
    pub(crate) fn event(&mut self, bytes: Bytes) {
        if !self.ended {
            self.plan.push(Segment::Bytes(bytes));
        }
    }

    /// Append a delta event, preceded by the delta delay (except before the
    /// first delta) and followed by any faults due after it.
    pub(crate) fn delta(&mut self, bytes: Bytes) {
        if self.ended {
            return;
        }

        if self.deltas_sent > 0 && !self.delta_delay.is_zero() {
            self.plan.push(Segment::Pause(self.delta_delay));
        }
        self.plan.push(Segment::Bytes(bytes));
        self.deltas_sent += 1;
        self.play_faults();
    }

    /// Insert the faults due after the deltas sent so far. Renderers call this
    /// once after their opening event, for faults after zero deltas.
    pub(crate) fn play_faults(&mut self) {
        while let Some(&(after, fault)) = self.faults.first() {
            if after > self.deltas_sent || self.ended {
                break;
            }

            self.faults.remove(0);
            match fault {
                Fault::Stall(ms) => self.plan.push(Segment::Pause(Duration::from_millis(ms))),
                Fault::Malformed => self
                    .plan
                    .push(Segment::Bytes(Bytes::from_static(MALFORMED_LINE))),
                Fault::Drop => {
                    self.plan.push(Segment::Drop);
                    self.ended = true;
                }
                Fault::Hang => {
                    self.plan.push(Segment::Hang);
                    self.ended = true;
                }
                Fault::KeepAlive(ms) => {
                    self.plan
                        .push(Segment::KeepAlive(Duration::from_millis(ms.max(1))));
                    self.ended = true;
                }
            }
        }
    }

    /// The finished plan.
    pub(crate) fn finish(self) -> Plan {
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Step;

    fn writer(step: Step, total: usize) -> PlanWriter {
        let Step::Response(response) = step else {
            panic!("not a response");
        };
        PlanWriter::for_step(&response, total)
    }

    #[test]
    fn faults_past_the_last_delta_happen_after_it() {
        let mut writer = writer(Step::text("").with_drop_after(99), 2);
        writer.event(Bytes::from_static(b"open"));
        writer.play_faults();
        writer.delta(Bytes::from_static(b"1"));
        writer.delta(Bytes::from_static(b"2"));
        writer.event(Bytes::from_static(b"close"));
        assert!(writer.is_ended());
        assert_eq!(
            writer.finish(),
            [
                Segment::Bytes(Bytes::from_static(b"open")),
                Segment::Bytes(Bytes::from_static(b"1")),
                Segment::Bytes(Bytes::from_static(b"2")),
                Segment::Drop,
            ]
        );
    }

    #[test]
    fn faults_at_the_same_point_play_stall_then_malformed_then_drop() {
        let mut writer = writer(
            Step::text("")
                .with_drop_after(1)
                .with_malformed_after(1)
                .with_stall(1, 7),
            3,
        );
        writer.delta(Bytes::from_static(b"1"));
        assert_eq!(
            writer.finish(),
            [
                Segment::Bytes(Bytes::from_static(b"1")),
                Segment::Pause(Duration::from_millis(7)),
                Segment::Bytes(Bytes::from_static(MALFORMED_LINE)),
                Segment::Drop,
            ]
        );
    }
}
