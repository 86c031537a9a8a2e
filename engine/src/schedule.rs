//! The order apply runs changes in: a change waits for the changes it
//! depends on (creates and updates after what they read; deletes before
//! what they read, so dependents go first), changes with nothing left to
//! wait for are ready in plan order, and a change that fails skips
//! everything downstream of it. No IO: `apply.rs` feeds it the workers'
//! results.

use std::collections::{HashMap, HashSet};

use mlops_provider_api::Action;

/// One change as scheduling sees it: its address, action and what it
/// depends on (addresses).
pub struct Step<'a> {
    pub address: &'a str,
    pub action: Action,
    pub depends_on: &'a [String],
}

pub struct Schedule {
    dependents: HashMap<usize, Vec<usize>>,
    remaining: HashMap<usize, usize>,
    /// Ready to run: a stack, so what a finished change made ready starts
    /// next (its dependents in plan order).
    ready: Vec<usize>,
    settled: HashSet<usize>,
}

fn removes(action: Action) -> bool {
    matches!(action, Action::Delete | Action::Forget)
}

impl Schedule {
    /// The schedule of `steps` (by index); `nodes` are the indices that do
    /// something (no-ops neither run nor hold anything up).
    pub fn new(steps: &[Step<'_>], nodes: &[usize]) -> Schedule {
        let index_of: HashMap<&str, usize> = nodes.iter().map(|&index| (steps[index].address, index)).collect();
        let mut waits_on: HashMap<usize, HashSet<usize>> = nodes.iter().map(|&index| (index, HashSet::new())).collect();
        for &index in nodes {
            let step = &steps[index];
            for dependency in step.depends_on {
                let Some(&upstream) = index_of.get(dependency.as_str()) else { continue };
                match (removes(step.action), removes(steps[upstream].action)) {
                    // Remove dependents first.
                    (true, true) => {
                        waits_on.entry(upstream).or_default().insert(index);
                    }
                    (false, false) => {
                        waits_on.entry(index).or_default().insert(upstream);
                    }
                    _ => {}
                }
            }
        }
        let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
        for (&node, upstreams) in &waits_on {
            for &upstream in upstreams {
                dependents.entry(upstream).or_default().push(node);
            }
        }
        for list in dependents.values_mut() {
            list.sort_unstable();
        }
        let remaining: HashMap<usize, usize> = waits_on.iter().map(|(&node, upstreams)| (node, upstreams.len())).collect();
        let mut ready: Vec<usize> = nodes.iter().copied().filter(|node| remaining[node] == 0).collect();
        ready.sort_unstable_by(|left, right| right.cmp(left));
        Schedule { dependents, remaining, ready, settled: HashSet::new() }
    }

    /// The next change to start, if one is ready.
    pub fn next_ready(&mut self) -> Option<usize> {
        self.ready.pop()
    }

    /// Records that `index` finished. Its dependents whose last wait it was
    /// become ready; when it failed, every change downstream of it that has
    /// not settled is returned instead, to be reported skipped.
    pub fn finished(&mut self, index: usize, succeeded: bool) -> Vec<usize> {
        self.settled.insert(index);
        let mut skipped = Vec::new();
        if succeeded {
            // Pushed last first, so that siblings start in plan order.
            for &dependent in self.dependents.get(&index).into_iter().flatten().rev() {
                if let Some(count) = self.remaining.get_mut(&dependent) {
                    *count -= 1;
                    if *count == 0 && !self.settled.contains(&dependent) {
                        self.ready.push(dependent);
                    }
                }
            }
        } else {
            let mut stack: Vec<usize> = self.dependents.get(&index).cloned().unwrap_or_default();
            while let Some(dependent) = stack.pop() {
                if !self.settled.insert(dependent) {
                    continue;
                }
                skipped.push(dependent);
                stack.extend(self.dependents.get(&dependent).cloned().unwrap_or_default());
            }
        }
        skipped
    }

    /// Whether `index` finished or was skipped.
    pub fn settled(&self, index: usize) -> bool {
        self.settled.contains(&index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(spec: &[(&'static str, Action, &'static [&'static str])]) -> (Vec<Vec<String>>, Vec<(&'static str, Action)>) {
        (
            spec.iter().map(|(_, _, depends)| depends.iter().map(|address| (*address).to_owned()).collect()).collect(),
            spec.iter().map(|(address, action, _)| (*address, *action)).collect(),
        )
    }

    /// Runs the schedule to the end, one change at a time; `fails` fail.
    fn run(spec: &[(&'static str, Action, &'static [&'static str])], fails: &[&str]) -> (Vec<&'static str>, Vec<&'static str>) {
        let (depends, heads) = steps(spec);
        let steps: Vec<Step<'_>> =
            heads.iter().zip(&depends).map(|((address, action), depends_on)| Step { address, action: *action, depends_on }).collect();
        let nodes: Vec<usize> = (0..steps.len()).filter(|&index| steps[index].action != Action::NoOp).collect();
        let mut schedule = Schedule::new(&steps, &nodes);
        let (mut order, mut skipped) = (Vec::new(), Vec::new());
        while let Some(index) = schedule.next_ready() {
            order.push(heads[index].0);
            for skip in schedule.finished(index, !fails.contains(&heads[index].0)) {
                skipped.push(heads[skip].0);
            }
        }
        skipped.sort_unstable();
        (order, skipped)
    }

    #[test]
    fn creates_run_after_what_they_read_in_plan_order() {
        let (order, skipped) = run(
            &[
                ("bucket.b", Action::Create, &[]),
                ("dataset.d", Action::Create, &["bucket.b"]),
                ("training.t", Action::Create, &["dataset.d"]),
                ("monitor.m", Action::Create, &["dataset.d"]),
            ],
            &[],
        );
        assert_eq!(order, ["bucket.b", "dataset.d", "training.t", "monitor.m"]);
        assert!(skipped.is_empty());
    }

    #[test]
    fn deletes_run_dependents_first() {
        let (order, _) = run(
            &[
                ("bucket.b", Action::Delete, &[]),
                ("dataset.d", Action::Delete, &["bucket.b"]),
                ("training.t", Action::Forget, &["dataset.d"]),
            ],
            &[],
        );
        assert_eq!(order, ["training.t", "dataset.d", "bucket.b"]);
    }

    #[test]
    fn a_failure_skips_everything_downstream_and_nothing_else() {
        let (order, skipped) = run(
            &[
                ("dataset.d", Action::Create, &[]),
                ("feature_set.f", Action::Create, &["dataset.d"]),
                ("training.t", Action::Create, &["feature_set.f"]),
                ("model.m", Action::Create, &["training.t"]),
                ("bucket.other", Action::Create, &[]),
            ],
            &["feature_set.f"],
        );
        assert_eq!(order, ["dataset.d", "feature_set.f", "bucket.other"]);
        assert_eq!(skipped, ["model.m", "training.t"]);
    }

    #[test]
    fn no_ops_neither_run_nor_hold_anything_up() {
        let (order, _) = run(
            &[
                ("dataset.d", Action::NoOp, &[]),
                ("training.t", Action::Replace, &["dataset.d"]),
                ("model.m", Action::Update, &["training.t"]),
            ],
            &[],
        );
        assert_eq!(order, ["training.t", "model.m"]);
    }

    #[test]
    fn a_change_waiting_on_two_runs_once_both_finished() {
        let (order, skipped) = run(
            &[
                ("dataset.a", Action::Create, &[]),
                ("dataset.b", Action::Create, &[]),
                ("training_set.s", Action::Create, &["dataset.a", "dataset.b"]),
            ],
            &[],
        );
        assert_eq!(order.last(), Some(&"training_set.s"));
        assert!(skipped.is_empty());
        let (order, skipped) = run(
            &[
                ("dataset.a", Action::Create, &[]),
                ("dataset.b", Action::Create, &[]),
                ("training_set.s", Action::Create, &["dataset.a", "dataset.b"]),
            ],
            &["dataset.a"],
        );
        assert_eq!(order, ["dataset.a", "dataset.b"]);
        assert_eq!(skipped, ["training_set.s"]);
    }
}
