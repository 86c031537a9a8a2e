//! The evaluation order: a topological order of the declarations, and one
//! report per dependency cycle naming every edge in it.

use super::*;

impl Checker<'_> {
    /// Evaluation order: dependencies first. Reports every cycle, whole.
    pub(super) fn order(&mut self, graph: &DiGraph<Node, Span>) -> Vec<NodeIndex> {
        let components = petgraph::algo::tarjan_scc(graph);
        let mut order = Vec::with_capacity(graph.node_count());
        for component in components {
            let cyclic = component.len() > 1 || graph.find_edge(component[0], component[0]).is_some();
            if cyclic {
                self.report_cycle(graph, &component);
            }
            order.extend(component);
        }
        order
    }

    pub(super) fn report_cycle(&mut self, graph: &DiGraph<Node, Span>, component: &[NodeIndex]) {
        let members: HashSet<NodeIndex> = component.iter().copied().collect();
        // Walk from the first member (in source order) along edges inside the
        // component until the walk comes back: that is one whole cycle.
        let start =
            *component.iter().min_by_key(|index| graph.edges(**index).map(|edge| edge.weight().start).min()).unwrap_or(&component[0]);
        let mut path = vec![start];
        let mut spans = Vec::new();
        let mut visited = HashSet::new();
        let mut current = start;
        loop {
            visited.insert(current);
            let mut edges: Vec<_> = graph.edges(current).filter(|edge| members.contains(&petgraph::visit::EdgeRef::target(edge))).collect();
            edges.sort_by_key(|edge| (petgraph::visit::EdgeRef::target(edge) != start, edge.weight().start));
            let Some(edge) = edges.first() else { break };
            let target = petgraph::visit::EdgeRef::target(edge);
            spans.push((*edge.weight(), graph[target].describe()));
            if target == start || visited.contains(&target) {
                path.push(target);
                break;
            }
            path.push(target);
            current = target;
        }
        let names: Vec<String> = path.iter().map(|index| graph[*index].describe()).collect();
        let Some(((first_span, first_target), rest)) = spans.split_first() else { return };
        let mut diagnostic = Diagnostic::error(codes::DEPENDENCY_CYCLE, format!("dependency cycle: {}", names.join(" -> ")))
            .at(*first_span, format!("{} refers to {first_target}", names[0]))
            .with_help("break the cycle by removing one of these references");
        for (index, (span, target)) in rest.iter().enumerate() {
            diagnostic = diagnostic.with_secondary(*span, format!("{} refers to {target}", names[index + 1]));
        }
        self.diagnostics.push(diagnostic);
    }
}
