//! The states an input moves through, and which moves are allowed.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Seen,
    Stable,
    Queued,
    Running,
    Done,
    Failed,
    Quarantined,
    /// A client cancelled the job (HTTP uploads).
    Cancelled,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Seen,
        State::Stable,
        State::Queued,
        State::Running,
        State::Done,
        State::Failed,
        State::Quarantined,
        State::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Seen => "seen",
            State::Stable => "stable",
            State::Queued => "queued",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Quarantined => "quarantined",
            State::Cancelled => "cancelled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Done | State::Failed | State::Quarantined | State::Cancelled
        )
    }

    /// The states a row may move to from this one.
    pub fn next(self) -> &'static [State] {
        use State::*;
        match self {
            Seen => &[Stable, Failed, Quarantined],
            Stable => &[Queued, Failed, Quarantined],
            Queued => &[Running, Failed, Quarantined, Cancelled],
            Running => &[Done, Failed, Quarantined, Queued, Cancelled],
            Done | Cancelled => &[],
            Failed | Quarantined => &[Queued],
        }
    }
}
