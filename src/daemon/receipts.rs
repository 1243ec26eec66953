//! Which SQS messages each journaled input came in on. A message is deleted only when every
//! input it announced is final, and while a job runs its messages are kept hidden (the
//! heartbeat). Receipt handles are per delivery and die with the process: after a restart
//! the queue redelivers, and the new handle joins the journaled input.

use std::collections::HashMap;

use crate::sources::sqs::Message;

#[derive(Default)]
pub struct Receipts {
    by_input: HashMap<i64, Vec<Message>>,
}

impl Receipts {
    /// Input `id` was (re)announced by `m`; a redelivery replaces the old handle.
    pub fn add(&mut self, id: i64, m: Message) {
        let list = self.by_input.entry(id).or_default();
        list.retain(|old| old.message_id != m.message_id);
        list.push(m);
    }

    /// Whether input `id` is already held through message `message_id`.
    pub fn holds(&self, id: i64, message_id: &str) -> bool {
        self.by_input
            .get(&id)
            .is_some_and(|l| l.iter().any(|m| m.message_id == message_id))
    }

    /// Every message held from `queue_url` (for the heartbeat); with `only`, those of the
    /// inputs it names.
    pub fn held_from(&self, queue_url: &str, only: Option<&[i64]>) -> Vec<Message> {
        let mut all: Vec<Message> = self
            .by_input
            .iter()
            .filter(|(id, _)| only.is_none_or(|ids| ids.contains(id)))
            .flat_map(|(_, l)| l)
            .filter(|m| m.queue_url == queue_url)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        all.dedup_by(|a, b| a.message_id == b.message_id);
        all
    }

    /// The delivery `m` is no longer held (its handle stopped working); a newer delivery of
    /// the same message, if one was added since, is kept.
    pub fn forget(&mut self, m: &Message) {
        for list in self.by_input.values_mut() {
            list.retain(|o| o.receipt_handle != m.receipt_handle);
        }
        self.by_input.retain(|_, l| !l.is_empty());
    }

    /// Inputs from `queue_url` not yet final.
    pub fn inputs_from(&self, queue_url: &str) -> usize {
        self.by_input
            .values()
            .filter(|l| l.iter().any(|m| m.queue_url == queue_url))
            .count()
    }

    /// Input `id` is final: the messages that announced nothing else still pending, which
    /// can now be deleted.
    pub fn finish(&mut self, id: i64) -> Vec<Message> {
        let mine = self.by_input.remove(&id).unwrap_or_default();
        mine.into_iter()
            .filter(|m| {
                !self
                    .by_input
                    .values()
                    .any(|l| l.iter().any(|o| o.message_id == m.message_id))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, handle: &str) -> Message {
        Message {
            queue_url: "q".into(),
            message_id: id.into(),
            receipt_handle: handle.into(),
        }
    }

    #[test]
    fn a_message_is_released_when_all_its_inputs_are_final() {
        let mut r = Receipts::default();
        r.add(1, m("a", "h1"));
        r.add(1, m("a", "h2")); // redelivered: new handle
        r.add(2, m("b", "h3"));
        r.add(3, m("b", "h3")); // one message, two records
        let held = r.held_from("q", None);
        assert_eq!(held.len(), 2, "a and b, once each");
        assert_eq!(held[0].receipt_handle, "h2");
        assert_eq!(r.inputs_from("q"), 3);
        assert!(r.holds(1, "a") && !r.holds(1, "b"));
        assert_eq!(r.finish(1).len(), 1);
        assert!(r.finish(2).is_empty(), "input 3 still pending");
        assert_eq!(r.finish(3)[0].message_id, "b");
        assert!(r.finish(4).is_empty());
    }

    #[test]
    fn a_lost_handle_is_forgotten_but_a_newer_one_kept() {
        let mut r = Receipts::default();
        r.add(1, m("a", "h1"));
        r.add(2, m("b", "h2"));
        r.forget(&m("a", "h1"));
        assert!(!r.holds(1, "a"));
        assert_eq!(r.inputs_from("q"), 1);
        r.add(1, m("a", "h3"));
        r.forget(&m("a", "h1"));
        assert!(r.holds(1, "a"), "the redelivery's handle stays");
        assert!(r.finish(1)[0].receipt_handle == "h3");
    }
}
