//! "Did you mean ...?" suggestions, by edit distance.

/// The closest candidate to `wrong`, if one is close enough to be a likely typo.
pub fn closest<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let wrong_lower = wrong.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        if candidate == wrong {
            continue;
        }
        let candidate_lower = candidate.to_lowercase();
        let distance = strsim::damerau_levenshtein(&wrong_lower, &candidate_lower);
        let longest = wrong.chars().count().max(candidate.chars().count()).max(1);
        // A shared prefix or containment ("rows" in "row_count") is a strong hint.
        let common_prefix = wrong_lower.chars().zip(candidate_lower.chars()).take_while(|(left, right)| left == right).count();
        let stem = wrong_lower.trim_end_matches('s');
        let related = candidate_lower.starts_with(&wrong_lower)
            || wrong_lower.starts_with(&candidate_lower)
            || candidate_lower.contains(&wrong_lower)
            || (stem.len() >= 3 && candidate_lower.starts_with(stem))
            || (common_prefix >= 4 && common_prefix * 2 >= wrong_lower.len());
        let threshold = (longest / 3).max(1);
        if distance <= threshold || (related && wrong.len() >= 3) {
            let score = distance as f64 - if related { 0.5 } else { 0.0 };
            if best.is_none_or(|(best_score, _)| score < best_score) {
                best = Some((score, candidate));
            }
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// A ready help line: "did you mean `x`?".
pub fn did_you_mean<'a>(wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(wrong, candidates).map(|candidate| format!("did you mean `{candidate}`?"))
}

/// "`a`, `b` or `c`", for help lines listing what is allowed.
pub fn one_of<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("`{}`", item.as_ref())).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        count => format!("{} or {}", quoted[..count - 1].join(", "), quoted[count - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_and_containing_names() {
        assert_eq!(closest("rows", ["row_count", "version", "uri"]), Some("row_count"));
        assert_eq!(closest("datset", ["dataset", "bucket"]), Some("dataset"));
        assert_eq!(closest("zzz", ["dataset", "bucket"]), None);
    }
}
