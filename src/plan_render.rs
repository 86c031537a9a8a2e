//! Rendering plans: the terminal text, the pull-request markdown, and the
//! public JSON format (versioned; its JSON Schema is `docs/plan.schema.json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mlops_engine::plan::{Plan, ResourceChange};
use mlops_provider_api::value::written::{as_expression, as_reference, is_unknown};
use mlops_provider_api::{Action, AttributePath};
use serde_json::{json, Value as Json};

pub const PUBLIC_FORMAT_VERSION: &str = "1.0";
const MARKDOWN_LIMIT: usize = 65_000;

#[derive(Clone, Copy)]
pub struct Style {
    pub colour: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn action(self, action: Action, text: &str) -> String {
        match action {
            Action::Create => self.paint("32", text),
            Action::Update => self.paint("33", text),
            Action::Replace | Action::Delete => self.paint("31", text),
            Action::Forget | Action::Read => self.paint("36", text),
            Action::NoOp => text.to_owned(),
        }
    }

    fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

fn is_sensitive(path: &[String], sensitive_paths: &[AttributePath]) -> bool {
    sensitive_paths.iter().any(|sensitive| path.starts_with(sensitive))
}

/// One value as it appears in a plan.
fn show(value: &Json, path: &[String], sensitive_paths: &[AttributePath]) -> String {
    if is_sensitive(path, sensitive_paths) {
        return "(sensitive)".to_owned();
    }
    if is_unknown(value) {
        return "(known after apply)".to_owned();
    }
    if let Some((address, identity)) = as_reference(value) {
        return match identity {
            Some(identity) => format!("{address} ({})", mlops_engine::plan::short_identity(identity)),
            None => address.to_owned(),
        };
    }
    if let Some(text) = as_expression(value) {
        return format!("{text}  (evaluated on apply)");
    }
    if value.as_object().is_some_and(|object| object.contains_key("$sensitive")) {
        return "(sensitive)".to_owned();
    }
    match value {
        Json::Array(items) if items.iter().all(|item| !item.is_object() && !item.is_array()) => {
            let parts: Vec<String> =
                items.iter().enumerate().map(|(index, item)| show(item, &child(path, &index.to_string()), sensitive_paths)).collect();
            format!("[{}]", parts.join(", "))
        }
        Json::Object(entries) if entries.is_empty() => "{}".to_owned(),
        Json::Array(items) if items.is_empty() => "[]".to_owned(),
        other => other.to_string(),
    }
}

/// `path` and one more segment; list positions are shown as `[0]` but are
/// plain indices in attribute paths.
fn child(path: &[String], segment: &str) -> Vec<String> {
    let mut path = path.to_vec();
    path.push(segment.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(segment).to_owned());
    path
}

fn is_nested(value: &Json) -> bool {
    match value {
        Json::Object(entries) => {
            !entries.is_empty()
                && as_reference(value).is_none()
                && as_expression(value).is_none()
                && !is_unknown(value)
                && !entries.contains_key("$sensitive")
        }
        Json::Array(items) => items.iter().any(|item| item.is_object() || item.is_array()),
        _ => false,
    }
}

fn key_text(key: &str) -> String {
    if mlops_compiler::units::is_identifier(key) || key.starts_with('[') {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Writes the attributes of one change. `all` shows every attribute (for
/// creates); otherwise only what changed, with a count of what did not.
/// What every level of a diff needs.
struct Diff<'a> {
    style: Style,
    sensitive_paths: &'a [AttributePath],
}

fn diff_object(
    out: &mut String,
    diff: &Diff<'_>,
    indent: usize,
    before: Option<&serde_json::Map<String, Json>>,
    after: Option<&serde_json::Map<String, Json>>,
    path: &[String],
    all: bool,
) {
    let (style, sensitive_paths) = (diff.style, diff.sensitive_paths);
    let empty = serde_json::Map::new();
    let before_map = before.unwrap_or(&empty);
    let after_map = after.unwrap_or(&empty);
    let mut keys: Vec<&String> = after_map.keys().collect();
    for key in before_map.keys() {
        if !after_map.contains_key(key) {
            keys.push(key);
        }
    }
    let pad = " ".repeat(indent);
    let mut unchanged = 0;
    for key in keys {
        if key.starts_with('$') {
            continue;
        }
        let key_path = child(path, key);
        let old = before_map.get(key).filter(|value| !value.is_null());
        let new = after_map.get(key).filter(|value| !value.is_null());
        // A secret not stored in state cannot be compared: it is not shown as changed.
        let withheld = is_sensitive(&key_path, sensitive_paths) && old.is_some_and(|old| old == &json!({ "$sensitive": null }));
        let same = withheld || comparable(old) == comparable(new);
        if same && !(all && new.is_some()) {
            if old.is_some() {
                unchanged += 1;
            }
            continue;
        }
        match (old, new) {
            (Some(old), Some(new)) if is_nested(old) && is_nested(new) && !same => {
                let _ = writeln!(out, "{pad}{} {} {{", style.action(Action::Update, "~"), key_text(key));
                diff_nested(out, diff, indent + 4, old, new, &key_path, all);
                let _ = writeln!(out, "{pad}  }}");
            }
            (_, Some(new)) if (old.is_none() || all && same) && is_nested(new) => {
                let _ = writeln!(out, "{pad}{} {} {{", style.action(Action::Create, "+"), key_text(key));
                diff_nested(out, diff, indent + 4, &Json::Null, new, &key_path, true);
                let _ = writeln!(out, "{pad}  }}");
            }
            (None, Some(new)) => {
                let _ = writeln!(
                    out,
                    "{pad}{} {} = {}",
                    style.action(Action::Create, "+"),
                    key_text(key),
                    show(new, &key_path, sensitive_paths)
                );
            }
            (Some(old), None) => {
                let _ = writeln!(
                    out,
                    "{pad}{} {} = {}",
                    style.action(Action::Delete, "-"),
                    key_text(key),
                    show(old, &key_path, sensitive_paths)
                );
            }
            (Some(old), Some(new)) if same => {
                let _ = writeln!(out, "{pad}  {} = {}", key_text(key), show(new, &key_path, sensitive_paths));
                let _ = old;
            }
            (Some(old), Some(new)) => {
                let _ = writeln!(
                    out,
                    "{pad}{} {} = {} -> {}",
                    style.action(Action::Update, "~"),
                    key_text(key),
                    show(old, &key_path, sensitive_paths),
                    show(new, &key_path, sensitive_paths)
                );
            }
            (None, None) => {}
        }
    }
    if unchanged > 0 && !all {
        let _ = writeln!(out, "{pad}  # ({unchanged} unchanged attribute{} hidden)", if unchanged == 1 { "" } else { "s" });
    }
}

fn diff_nested(out: &mut String, diff: &Diff<'_>, indent: usize, old: &Json, new: &Json, path: &[String], all: bool) {
    match (old, new) {
        (Json::Array(old_items), Json::Array(new_items)) => {
            let as_map = |items: &Vec<Json>| {
                items.iter().enumerate().map(|(index, item)| (index.to_string(), item.clone())).collect::<serde_json::Map<_, _>>()
            };
            diff_object(out, diff, indent, Some(&as_map(old_items)), Some(&as_map(new_items)), path, all);
        }
        (_, Json::Array(new_items)) => {
            let as_map =
                new_items.iter().enumerate().map(|(index, item)| (index.to_string(), item.clone())).collect::<serde_json::Map<_, _>>();
            diff_object(out, diff, indent, None, Some(&as_map), path, all);
        }
        _ => diff_object(out, diff, indent, old.as_object(), new.as_object(), path, all),
    }
}

/// Reference identities are shown in reasons, not as attribute changes.
fn comparable(value: Option<&Json>) -> Option<Json> {
    value.map(mlops_engine::convert::without_identities)
}

fn header(change: &ResourceChange) -> String {
    match change.action {
        Action::Create => format!("{} will be created", change.address),
        Action::Update => format!("{} will be updated in place", change.address),
        Action::Replace if change.lifecycle.create_before_destroy => format!("{} will be replaced (create before destroy)", change.address),
        Action::Replace => format!("{} will be replaced", change.address),
        Action::Delete => format!("{} will be destroyed", change.address),
        Action::Forget => format!("{} will be forgotten (kept, dropped from state)", change.address),
        Action::Read => format!("{} will be read", change.address),
        Action::NoOp => format!("{} is unchanged", change.address),
    }
}

fn symbol(change: &ResourceChange) -> &'static str {
    if change.action == Action::Replace && change.lifecycle.create_before_destroy {
        "+/-"
    } else {
        change.action.symbol()
    }
}

/// `dataset "events[\"eu\"]"`: the block's name with the instance's key.
fn block_label(change: &ResourceChange) -> String {
    let base = match change.address.parse::<mlops_compiler::address::ResourceAddress>() {
        Ok(address) => format!("{}{}", address.name, address.key),
        Err(_) => change.address.clone(),
    };
    if change.is_data {
        format!("data \"{}\" \"{base}\"", change.kind)
    } else {
        format!("{} \"{base}\"", change.kind)
    }
}

/// The body of one change, for the text and markdown forms.
pub fn render_change(out: &mut String, style: Style, change: &ResourceChange) {
    let _ = writeln!(out, "  {}", style.bold(&format!("# {}", header(change))));
    for reason in &change.reasons {
        let _ = writeln!(out, "  #   {reason}");
    }
    let _ = writeln!(out, "  {} {} {{", style.action(change.action, symbol(change)), block_label(change));
    let diff = Diff { style, sensitive_paths: &change.sensitive_paths };
    match change.action {
        Action::Delete | Action::Forget => {}
        Action::Create | Action::Read => diff_object(out, &diff, 6, None, change.after.as_ref(), &[], true),
        _ => diff_object(out, &diff, 6, change.before.as_ref(), change.after.as_ref(), &[], false),
    }
    let _ = writeln!(out, "    }}");
}

pub fn summary_line(plan: &Plan) -> String {
    if !plan.has_changes() {
        return "No changes. The configuration matches what exists.".to_owned();
    }
    let mut line = format!(
        "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Replace),
        plan.count(Action::Delete)
    );
    if plan.count(Action::Forget) > 0 {
        let _ = write!(line, " {} to forget.", plan.count(Action::Forget));
    }
    line
}

fn counts_by_kind(plan: &Plan, action: Action) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for change in plan.changes.iter().filter(|change| change.action == action) {
        *kinds.entry(change.kind.as_str()).or_default() += 1;
    }
    kinds.iter().map(|(kind, count)| format!("{kind} {count}")).collect::<Vec<_>>().join(", ")
}

const SUMMARY_ACTIONS: [Action; 6] = [Action::Create, Action::Update, Action::Replace, Action::Delete, Action::Forget, Action::Read];

pub fn render_text(plan: &Plan, style: Style) -> String {
    let mut out = String::new();
    if !plan.notes.is_empty() {
        let _ = writeln!(out, "{}", style.bold("Notes:"));
        for note in &plan.notes {
            let _ = writeln!(out, "  - {note}");
        }
        out.push('\n');
    }
    if !plan.drift.is_empty() {
        let _ = writeln!(out, "{}", style.bold("Changes made outside mlops since the last apply:"));
        for drift in &plan.drift {
            let _ = writeln!(out, "  ~ {}: {}", drift.address, drift.summary);
        }
        let recorded = plan.refreshed_records();
        if recorded > 0 {
            let _ = writeln!(
                out,
                "  apply records {} in the state, and changes nothing else for {}",
                if recorded == 1 { "this" } else { "these" },
                if recorded == 1 { "it" } else { "them" }
            );
        }
        out.push('\n');
    }
    if !plan.has_changes() {
        if let Some(policies) = policy_summary(plan) {
            let _ = writeln!(out, "{}", style.bold(&policies.heading));
            for line in &policies.lines {
                let _ = writeln!(out, "  {line}");
            }
            out.push('\n');
        }
        let _ = writeln!(out, "{}", summary_line(plan));
        return out;
    }
    let _ = writeln!(out, "{}", style.bold("Summary:"));
    for action in SUMMARY_ACTIONS {
        let count = plan.count(action);
        if count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {} {:<8} {count:>5}  ({})",
            style.action(action, &format!("{:>3}", action.symbol())),
            action.verb(),
            counts_by_kind(plan, action)
        );
    }
    let destructive: Vec<&ResourceChange> =
        plan.changes.iter().filter(|change| matches!(change.action, Action::Replace | Action::Delete)).collect();
    if !destructive.is_empty() {
        let _ = writeln!(out, "\n{}", style.bold("Destroyed or replaced:"));
        for change in destructive {
            let _ = writeln!(out, "  {} {}", style.action(change.action, symbol(change)), change.address);
        }
    }
    if let Some(report) = mlops_engine::cost::estimate(plan) {
        let _ = writeln!(out, "\n{}", style.bold(&format!("Estimated cost ({}, from the provider's prices):", report.currency)));
        for line in &report.lines {
            let _ = writeln!(out, "  {}", cost_line(line));
        }
        let _ = writeln!(out, "  monthly change: {}", signed_range(report.monthly_delta));
    }
    if let Some(policies) = policy_summary(plan) {
        let _ = writeln!(out, "\n{}", style.bold(&policies.heading));
        for line in &policies.lines {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push('\n');
    for change in plan.changes.iter().filter(|change| change.is_change()) {
        render_change(&mut out, style, change);
        out.push('\n');
    }
    let changed_outputs: Vec<_> = plan.outputs.iter().filter(|output| output.before != output.after || output.residual.is_some()).collect();
    if !changed_outputs.is_empty() {
        let _ = writeln!(out, "{}", style.bold("Changes to outputs:"));
        for output in changed_outputs {
            let shown = |value: &Option<Json>| match value {
                _ if output.sensitive => "(sensitive)".to_owned(),
                Some(value) => value.to_string(),
                None => "(known after apply)".to_owned(),
            };
            match &output.before {
                None => {
                    let _ = writeln!(out, "  {} {} = {}", style.action(Action::Create, "+"), output.name, shown(&output.after));
                }
                Some(_) if plan.destroy => {
                    let _ = writeln!(out, "  {} {}", style.action(Action::Delete, "-"), output.name);
                }
                Some(_) => {
                    let _ = writeln!(
                        out,
                        "  {} {} = {} -> {}",
                        style.action(Action::Update, "~"),
                        output.name,
                        shown(&output.before),
                        shown(&output.after)
                    );
                }
            }
        }
        out.push('\n');
    }
    let _ = writeln!(out, "{}", style.bold(&summary_line(plan)));
    out
}

/// The plan as a pull-request comment, under 65,000 characters.
pub fn render_markdown(plan: &Plan) -> String {
    let mut head = String::new();
    let _ = writeln!(head, "### mlops plan\n");
    let _ = writeln!(head, "**{}**\n", summary_line(plan));
    if !plan.notes.is_empty() {
        let _ = writeln!(head, "**Notes:**\n");
        for note in &plan.notes {
            let _ = writeln!(head, "- {note}");
        }
        head.push('\n');
    }
    if !plan.drift.is_empty() {
        let _ = writeln!(head, "**Changed outside mlops:**\n");
        for drift in &plan.drift {
            let _ = writeln!(head, "- `{}`: {}", drift.address, drift.summary);
        }
        head.push('\n');
    }
    if let Some(policies) = policy_summary(plan) {
        let _ = writeln!(head, "**{}**\n", policies.heading.trim_end_matches(':'));
        for line in &policies.lines {
            let _ = writeln!(head, "- {line}");
        }
        if !policies.lines.is_empty() {
            head.push('\n');
        }
    }
    if plan.has_changes() {
        let _ = writeln!(head, "| action | count | kinds |\n|---|---:|---|");
        for action in SUMMARY_ACTIONS {
            let count = plan.count(action);
            if count > 0 {
                let _ = writeln!(head, "| {} {} | {count} | {} |", action.symbol(), action.verb(), counts_by_kind(plan, action));
            }
        }
        head.push('\n');
        let destructive: Vec<&ResourceChange> =
            plan.changes.iter().filter(|change| matches!(change.action, Action::Replace | Action::Delete)).collect();
        if !destructive.is_empty() {
            let _ = writeln!(head, "**Destroyed or replaced:**\n");
            for change in destructive {
                let _ = writeln!(head, "- `{}` ({}): {}", change.address, change.action.verb(), change.reasons.join("; "));
            }
            head.push('\n');
        }
        if let Some(report) = mlops_engine::cost::estimate(plan) {
            let _ = writeln!(head, "**Estimated cost** ({}): monthly change {}\n", report.currency, signed_range(report.monthly_delta));
            for line in &report.lines {
                let _ = writeln!(head, "- {}", cost_line(line).replacen(&line.address, &format!("`{}`", line.address), 1));
            }
            head.push('\n');
        }
    }
    let mut body = String::new();
    for change in plan.changes.iter().filter(|change| change.is_change()) {
        render_change(&mut body, Style { colour: false }, change);
        body.push('\n');
    }
    if body.is_empty() {
        return head;
    }
    // Diff syntax colours lines by their first character.
    let body: String = body
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let marker = match trimmed.chars().next() {
                Some('+') => "+",
                Some('-') => "-",
                Some('~') => "!",
                _ => " ",
            };
            format!("{marker} {line}\n")
        })
        .collect();
    let opening = "<details><summary>Full plan</summary>\n\n```diff\n";
    let closing = "```\n\n</details>\n";
    let budget = MARKDOWN_LIMIT.saturating_sub(head.len() + opening.len() + closing.len() + 200);
    let mut kept = String::new();
    let mut cut_lines = 0usize;
    for line in body.lines() {
        if cut_lines > 0 || kept.len() + line.len() + 1 > budget {
            cut_lines += 1;
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let mut out = head;
    out.push_str(opening);
    out.push_str(&kept);
    out.push_str(closing);
    if cut_lines > 0 {
        let _ = writeln!(out, "\n_The diff was cut here to fit a comment: {cut_lines} more lines. Run `mlops plan` to see all of it._");
    }
    out
}

fn redact(value: Option<&serde_json::Map<String, Json>>, sensitive_paths: &[AttributePath]) -> Json {
    let Some(value) = value else { return Json::Null };
    let mut copy = value.clone();
    for path in sensitive_paths {
        if let Some(slot) = mlops_engine::state::json_at_mut(&mut copy, path) {
            *slot = Json::String("(sensitive)".to_owned());
        }
    }
    // Markers become plain JSON the schema documents.
    fn plain(value: &Json) -> Json {
        if let Some((address, identity)) = as_reference(value) {
            return json!({ "reference": address, "identity": identity });
        }
        if let Some(text) = as_expression(value) {
            return json!({ "expression": text });
        }
        if is_unknown(value) {
            return Json::Null;
        }
        match value {
            Json::Object(entries) => Json::Object(
                entries.iter().filter(|(key, _)| !key.starts_with('$')).map(|(key, item)| (key.clone(), plain(item))).collect(),
            ),
            Json::Array(items) => Json::Array(items.iter().map(plain).collect()),
            other => other.clone(),
        }
    }
    plain(&Json::Object(copy))
}

fn actions(change: &ResourceChange) -> Vec<&'static str> {
    match change.action {
        Action::Replace if change.lifecycle.create_before_destroy => vec!["create", "delete"],
        Action::Replace => vec!["delete", "create"],
        Action::NoOp => vec!["no-op"],
        other => vec![other.verb()],
    }
}

/// The public JSON form of a plan.
pub fn render_json(plan: &Plan, diagnostics: &[Json]) -> Json {
    let changes: Vec<Json> = plan
        .changes
        .iter()
        .map(|change| {
            json!({
                "address": change.address,
                "module_path": change.module_path,
                "kind": change.kind,
                "mode": if change.is_data { "data" } else { "managed" },
                "provider": change.provider_key,
                "actions": actions(change),
                "reasons": change.reasons,
                "before": redact(change.before.as_ref(), &change.sensitive_paths),
                "after": redact(change.after.as_ref(), &change.sensitive_paths),
                "after_unknown": change.after_unknown,
                "sensitive_paths": change.sensitive_paths,
                "depends_on": change.depends_on,
            })
        })
        .collect();
    let drift: Vec<Json> = plan
        .drift
        .iter()
        .map(|drift| json!({ "address": drift.address, "summary": drift.summary, "before": drift.before, "after": drift.after }))
        .collect();
    let outputs: serde_json::Map<String, Json> = plan
        .outputs
        .iter()
        .map(|output| {
            let shown = |value: &Option<Json>| {
                if output.sensitive {
                    value.as_ref().map(|_| Json::String("(sensitive)".into())).unwrap_or(Json::Null)
                } else {
                    value.clone().unwrap_or(Json::Null)
                }
            };
            (
                output.name.clone(),
                json!({
                    "before": shown(&output.before),
                    "after": shown(&output.after),
                    "after_unknown": output.after.is_none() && !plan.destroy,
                    "sensitive": output.sensitive,
                }),
            )
        })
        .collect();
    let mut rendered = json!({
        "format_version": PUBLIC_FORMAT_VERSION,
        "config_hash": plan.config_hash,
        "state_lineage": plan.state_lineage,
        "state_serial": plan.state_serial,
        "destroy": plan.destroy,
        "has_changes": plan.has_changes(),
        "summary": {
            "add": plan.count(Action::Create),
            "change": plan.count(Action::Update),
            "replace": plan.count(Action::Replace),
            "destroy": plan.count(Action::Delete),
            "forget": plan.count(Action::Forget),
            "read": plan.count(Action::Read),
        },
        "resource_changes": changes,
        "drift": drift,
        "notes": plan.notes,
        "outputs": outputs,
        "diagnostics": diagnostics,
    });
    // Only where a provider has prices.
    if let Some(report) = mlops_engine::cost::estimate(plan) {
        rendered["cost"] = serde_json::to_value(report).unwrap_or(Json::Null);
    }
    // Only where the configuration has policies.
    if !plan.policies.is_empty() {
        rendered["policies"] = serde_json::to_value(&plan.policies).unwrap_or(Json::Null);
    }
    rendered
}

/// The policies' results in a few lines: a heading with the counts, then
/// one line per violation and per result left for apply.
struct PolicySummary {
    heading: String,
    lines: Vec<String>,
}

fn policy_summary(plan: &Plan) -> Option<PolicySummary> {
    use mlops_compiler::policy::Enforcement;
    if plan.policies.is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    let (mut holding, mut warnings, mut advisories) = (0, 0, 0);
    for policy in &plan.policies {
        let owner = if policy.module.is_empty() { String::new() } else { format!(" from {}", policy.module) };
        let (level, count) = match policy.enforcement {
            Enforcement::Error => ("error", &mut 0),
            Enforcement::Warning => ("warning", &mut warnings),
            Enforcement::Advisory => ("advisory", &mut advisories),
        };
        if policy.failures.is_empty() {
            holding += 1;
        } else {
            *count += 1;
        }
        for failure in &policy.failures {
            let subject = failure.subject.as_deref().unwrap_or("the plan");
            lines.push(format!("{level}: {subject} breaks `{}`{owner} ({}): {}", policy.name, policy.source, failure.message));
        }
        if !policy.unknown.is_empty() {
            lines.push(format!(
                "`{}`{owner} is decided on apply for {}: it reads values known only then",
                policy.name,
                policy.unknown.join(", ")
            ));
        }
    }
    let mut counts = vec![format!("{holding} hold")];
    if warnings > 0 {
        counts.push(format!("{warnings} with warnings"));
    }
    if advisories > 0 {
        counts.push(format!("{advisories} with advice"));
    }
    let total = plan.policies.len();
    Some(PolicySummary { heading: format!("Policies ({total} checked: {}):", counts.join(", ")), lines })
}

/// One change's estimate in words: `serving.api  61.32 per month (was
/// 30.66): 2 replica(s) for 730 hours`.
fn cost_line(line: &mlops_engine::cost::CostLine) -> String {
    use mlops_engine::cost::{money, range};
    let figure = match (line.per_run, line.monthly, line.monthly_before) {
        (Some(per_run), _, _) => match line.per_run_expected {
            Some(expected) => format!("about {} per run as long as the last one, up to {}", money(expected), money(per_run)),
            None => format!("up to {} per run", money(per_run)),
        },
        (None, Some(monthly), Some(before)) => format!("{} per month (was {})", range(monthly), range(before)),
        (None, Some(monthly), None) => format!("{} per month", range(monthly)),
        (None, None, Some(before)) => format!("0 per month (was {})", range(before)),
        (None, None, None) => "0".to_owned(),
    };
    format!("{}  {figure}: {}", line.address, line.basis)
}

/// A monthly change: `+61.32`, `-30.66`, `+61.32 to +122.64`.
fn signed_range((low, high): (f64, f64)) -> String {
    let signed = |amount: f64| format!("{}{}", if amount < 0.0 { "-" } else { "+" }, mlops_engine::cost::money(amount.abs()));
    if (high - low).abs() < 0.005 {
        signed(low)
    } else {
        format!("{} to {}", signed(low), signed(high))
    }
}
