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

    pub fn of(&self, id: i64) -> Vec<Message> {
        self.by_input.get(&id).cloned().unwrap_or_default()
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
        assert_eq!(r.of(1).len(), 1);
        assert_eq!(r.of(1)[0].receipt_handle, "h2");
        assert_eq!(r.finish(1).len(), 1);
        assert!(r.finish(2).is_empty(), "input 3 still pending");
        assert_eq!(r.finish(3)[0].message_id, "b");
        assert!(r.finish(4).is_empty());
    }
}
