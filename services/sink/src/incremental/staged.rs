//! Scripts planned ahead of their group (see `ferry_kit::consume` on staging).
//!
//! While a lane's group runs on the target, the consume loop hands the lane's next full batch
//! to the sink, which plans its script on a blocking thread (a catch-up group's plan took ~3 ms
//! of a ~29 ms cycle, all of it on the lane's critical path). A plan is kept under the message
//! sequences it was made from and used only by a group of exactly those messages: planning is a
//! pure function of the group's transactions, so the staged script is the one the group would
//! have planned itself. Anything else (a group cut differently, safe mode, a fanned-out group)
//! plans afresh, and an unused plan is replaced by the lane's next one. Nothing here is
//! durable: a restart simply plans again.

use super::script::Script;
use std::collections::HashMap;
use std::sync::Mutex;

/// A group's script, the rows of each of its transactions, and whether it is the net effect.
pub type Plan = (Script, Vec<u64>, bool);

/// Each lane's plan for its next group, by the APPLY sequences of the group's messages.
#[derive(Default)]
pub struct StagedPlans {
    by_lane: Mutex<HashMap<u32, (Vec<u64>, Plan)>>,
}

impl StagedPlans {
    pub fn put(&self, lane: u32, seqs: Vec<u64>, plan: Plan) {
        if let Ok(mut plans) = self.by_lane.lock() {
            plans.insert(lane, (seqs, plan));
        }
    }

    /// The lane's staged plan, if it was made from exactly the messages `seqs`.
    pub fn take(&self, lane: u32, seqs: &[u64]) -> Option<Plan> {
        let mut plans = self.by_lane.lock().ok()?;
        if plans.get(&lane).is_some_and(|(staged, _)| staged.as_slice() == seqs) {
            return plans.remove(&lane).map(|(_, plan)| plan);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_serves_only_the_group_of_exactly_its_messages() {
        let plans = StagedPlans::default();
        plans.put(3, vec![10, 11, 12], (Script::in_transaction(), vec![4, 4, 4], true));
        // Another lane, or the same lane's group cut differently: plan afresh.
        assert!(plans.take(2, &[10, 11, 12]).is_none());
        assert!(plans.take(3, &[10, 11]).is_none());
        let (_, rows, net) = plans.take(3, &[10, 11, 12]).expect("the staged plan");
        assert_eq!((rows, net), (vec![4, 4, 4], true));
        // Used once.
        assert!(plans.take(3, &[10, 11, 12]).is_none());
    }
}
