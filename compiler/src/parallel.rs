//! Work spread over the machine's cores by threads that end with the call.
//! The compiler's passes are short: a pool kept alive, as rayon's, measured
//! slower here, because the memory its threads allocated stayed theirs.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `work` on every item, on every core; the results are in the order of
/// `items`. Workers claim runs of neighbouring items, so that a hundred
/// thousand small items cost a few hundred claims, not a hundred thousand.
/// A panic in a worker is a panic here.
pub(crate) fn on_every_core<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from).min(items.len());
    if workers <= 1 {
        return items.iter().map(work).collect();
    }
    // Small runs keep the cores evenly busy when items differ in cost.
    let run = (items.len() / (workers * 32)).max(1);
    let next = AtomicUsize::new(0);
    let done: Vec<Vec<(usize, Vec<R>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let start = next.fetch_add(run, Ordering::Relaxed);
                        if start >= items.len() {
                            break;
                        }
                        let end = (start + run).min(items.len());
                        done.push((start, items[start..end].iter().map(&work).collect()));
                    }
                    done
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    let mut runs: Vec<(usize, Vec<R>)> = done.into_iter().flatten().collect();
    runs.sort_unstable_by_key(|(start, _)| *start);
    runs.into_iter().flat_map(|(_, results)| results).collect()
}

#[cfg(test)]
mod tests {
    use super::on_every_core;

    #[test]
    fn results_come_back_in_the_order_of_the_items() {
        for count in [0, 1, 2, 7, 1000, 100_003] {
            let items: Vec<usize> = (0..count).collect();
            let doubled = on_every_core(&items, |item| item * 2);
            assert_eq!(doubled, items.iter().map(|item| item * 2).collect::<Vec<_>>(), "{count} items");
        }
    }

    #[test]
    #[should_panic(expected = "item 5")]
    fn a_panic_in_a_worker_is_a_panic_of_the_caller() {
        let items: Vec<usize> = (0..64).collect();
        on_every_core(&items, |&item| if item == 5 { panic!("item 5") } else { item });
    }
}
