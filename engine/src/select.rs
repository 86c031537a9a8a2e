//! `-target` and `-exclude`: which resource instances a plan covers. A
//! target brings in what it depends on; an exclusion takes out what
//! depends on what it names. Works on addresses alone, so it is tested
//! here with no configuration or state.

use std::collections::{HashMap, HashSet};

use mlops_compiler::address::{AddressPattern, ResourceAddress};

/// One resource block: its address without an instance key, the blocks
/// it depends on, and its instances.
pub struct Block {
    pub address: ResourceAddress,
    pub depends_on: Vec<ResourceAddress>,
    pub instances: Vec<ResourceAddress>,
}

/// The addresses of the selected instances, among the configuration's
/// `blocks` and the `recorded` instances of the state (a recorded instance
/// of a block that is gone counts as that block's).
pub fn select(
    blocks: &[Block],
    recorded: impl Iterator<Item = ResourceAddress>,
    targets: &[AddressPattern],
    excludes: &[AddressPattern],
) -> HashSet<String> {
    // Dependencies are between resource blocks; selection is of instances.
    let mut dependencies: HashMap<ResourceAddress, Vec<ResourceAddress>> = HashMap::new();
    let mut instances_of: HashMap<ResourceAddress, Vec<ResourceAddress>> = HashMap::new();
    for block in blocks {
        dependencies.insert(block.address.clone(), block.depends_on.clone());
        instances_of.entry(block.address.clone()).or_default().extend(block.instances.iter().cloned());
    }
    for address in recorded {
        let instances = instances_of.entry(address.without_key()).or_default();
        if !instances.contains(&address) {
            instances.push(address);
        }
    }
    let all: Vec<&ResourceAddress> = instances_of.values().flatten().collect();
    let mut selected: HashSet<ResourceAddress> = HashSet::new();
    if targets.is_empty() {
        selected.extend(all.iter().map(|address| (*address).clone()));
    } else {
        let mut queue: Vec<ResourceAddress> = all
            .iter()
            .filter(|address| targets.iter().any(|target| address.is_selected_by(target)))
            .map(|address| (*address).clone())
            .collect();
        while let Some(address) = queue.pop() {
            if !selected.insert(address.clone()) {
                continue;
            }
            for dependency in dependencies.get(&address.without_key()).into_iter().flatten() {
                for instance in instances_of.get(dependency).into_iter().flatten() {
                    if !selected.contains(instance) {
                        queue.push(instance.clone());
                    }
                }
            }
        }
    }
    if !excludes.is_empty() {
        // Excluding something excludes what depends on it: the instances the
        // patterns name, and every resource downstream of their blocks.
        let directly: HashSet<&ResourceAddress> =
            all.iter().copied().filter(|address| excludes.iter().any(|pattern| address.is_selected_by(pattern))).collect();
        let seeds: HashSet<ResourceAddress> = directly.iter().map(|address| address.without_key()).collect();
        let mut downstream: HashSet<ResourceAddress> = HashSet::new();
        loop {
            let before = downstream.len();
            for (resource, depends) in &dependencies {
                if depends.iter().any(|dependency| seeds.contains(dependency) || downstream.contains(dependency)) {
                    downstream.insert(resource.clone());
                }
            }
            if downstream.len() == before {
                break;
            }
        }
        selected.retain(|address| !directly.contains(address) && !downstream.contains(&address.without_key()));
    }
    selected.iter().map(ResourceAddress::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> ResourceAddress {
        text.parse().unwrap()
    }

    /// bucket.lake <- dataset.d <- feature_set.f["eu"], feature_set.f["us"] <- training.t; monitor.m <- dataset.d
    fn chain() -> Vec<Block> {
        let block = |name: &str, depends: &[&str], instances: &[&str]| Block {
            address: address(name),
            depends_on: depends.iter().map(|dependency| address(dependency)).collect(),
            instances: instances.iter().map(|instance| address(instance)).collect(),
        };
        vec![
            block("bucket.lake", &[], &["bucket.lake"]),
            block("dataset.d", &["bucket.lake"], &["dataset.d"]),
            block("feature_set.f", &["dataset.d"], &["feature_set.f[\"eu\"]", "feature_set.f[\"us\"]"]),
            block("training.t", &["feature_set.f"], &["training.t"]),
            block("monitor.m", &["dataset.d"], &["monitor.m"]),
        ]
    }

    fn run(targets: &[&str], excludes: &[&str], recorded: &[&str]) -> Vec<String> {
        let patterns = |texts: &[&str]| -> Vec<AddressPattern> { texts.iter().map(|text| text.parse().unwrap()).collect() };
        let mut selected: Vec<String> =
            select(&chain(), recorded.iter().map(|text| address(text)), &patterns(targets), &patterns(excludes)).into_iter().collect();
        selected.sort();
        selected
    }

    #[test]
    fn selection_follows_dependencies_one_way_each() {
        // No pattern: everything, and a recorded instance of a block that is gone.
        assert_eq!(run(&[], &[], &["bucket.old"]).len(), 7);
        // A target brings what it depends on, not what depends on it.
        assert_eq!(run(&["feature_set.f[\"eu\"]"], &[], &[]), ["bucket.lake", "dataset.d", "feature_set.f[\"eu\"]"]);
        assert_eq!(
            run(&["training.t"], &[], &[]),
            ["bucket.lake", "dataset.d", "feature_set.f[\"eu\"]", "feature_set.f[\"us\"]", "training.t"]
        );
        // An exclusion takes out what depends on it, all the way down.
        assert_eq!(run(&[], &["dataset.d"], &[]), ["bucket.lake"]);
        // Excluding one instance takes out the blocks downstream of its block.
        assert_eq!(run(&[], &["feature_set.f[\"us\"]"], &[]), ["bucket.lake", "dataset.d", "feature_set.f[\"eu\"]", "monitor.m"]);
        // Both: the target's closure, less what the exclusion removes.
        assert_eq!(run(&["training.t", "monitor.m"], &["feature_set.f"], &[]), ["bucket.lake", "dataset.d", "monitor.m"]);
    }
}
