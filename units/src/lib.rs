//! Reading the small value languages inside strings: Kubernetes quantities,
//! durations, timestamps, object-storage URIs, bucket and registry names, identifiers,
//! version constraints and resource addresses ([`address`]), and SHA-256
//! content digests ([`digest`]).
//! Each reader returns the parsed value or a message and a suggested fix.
//!
//! This is the only reader of each: the compiler checks configurations with
//! it, and the providers read the same values with it (through
//! `mlops-provider-api`), so what `validate` accepts is what a provider
//! understands. Its one dependency is the SHA-256 crate, to stay cheap for
//! both.

pub mod address;
pub mod digest;

/// A rejected value: what is wrong, and what the user probably meant.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub message: String,
    pub help: String,
}

fn reject(message: impl Into<String>, help: impl Into<String>) -> Rejection {
    Rejection { message: message.into(), help: help.into() }
}

const BINARY_SUFFIXES: &[(&str, f64)] = &[
    ("Ki", 1024.0),
    ("Mi", 1_048_576.0),
    ("Gi", 1_073_741_824.0),
    ("Ti", 1_099_511_627_776.0),
    ("Pi", 1_125_899_906_842_624.0),
    ("Ei", 1_152_921_504_606_846_976.0),
];
const DECIMAL_SUFFIXES: &[(&str, f64)] =
    &[("m", 1e-3), ("", 1.0), ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12), ("P", 1e15), ("E", 1e18)];

/// Parses a Kubernetes resource quantity (`500m`, `2`, `32Gi`, `1e3`) into its
/// numeric value.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let number_length = text
        .char_indices()
        .take_while(|(index, character)| {
            character.is_ascii_digit() || *character == '.' || (*index == 0 && (*character == '+' || *character == '-'))
        })
        .count();
    let (number, suffix) = text.split_at(number_length);
    let number: f64 = number.parse().ok()?;
    if let Some(exponent) = suffix.strip_prefix(['e', 'E']) {
        return exponent.parse::<i32>().ok().map(|exponent| number * 10f64.powi(exponent));
    }
    BINARY_SUFFIXES.iter().chain(DECIMAL_SUFFIXES).find(|(candidate, _)| *candidate == suffix).map(|(_, multiplier)| number * multiplier)
}

/// Checks a memory quantity; returns its size in bytes.
pub fn check_memory(text: &str) -> Result<f64, Rejection> {
    if let Some(bytes) = parse_quantity(text) {
        if bytes < 0.0 {
            return Err(reject(format!("memory cannot be negative: \"{text}\""), "write a size such as \"4Gi\""));
        }
        if text.trim().ends_with('m') {
            return Err(reject(
                format!("\"{text}\" is a thousandth of a byte: `m` means milli, not mega"),
                format!("did you mean \"{}Mi\"?", text.trim().trim_end_matches('m')),
            ));
        }
        return Ok(bytes);
    }
    let trimmed = text.trim();
    let digits: String = trimmed.chars().take_while(|character| character.is_ascii_digit() || *character == '.').collect();
    let unit = trimmed[digits.len()..].trim().to_ascii_lowercase();
    let binary = match unit.as_str() {
        "kb" | "kib" | "k" => Some("Ki"),
        "mb" | "mib" | "m" => Some("Mi"),
        "gb" | "gib" | "g" => Some("Gi"),
        "tb" | "tib" | "t" => Some("Ti"),
        "pb" | "pib" => Some("Pi"),
        _ => None,
    };
    let help = match (binary, digits.is_empty()) {
        (Some(suffix), false) => {
            format!("did you mean \"{digits}{suffix}\"? Memory uses the binary suffixes Ki, Mi, Gi, Ti (or decimal k, M, G, T)")
        }
        _ => "write a Kubernetes quantity such as \"512Mi\", \"4Gi\" or \"32Gi\"".to_owned(),
    };
    Err(reject(format!("\"{text}\" is not a memory quantity"), help))
}

/// Checks a CPU quantity given as a string; returns cores.
pub fn check_cpu(text: &str) -> Result<f64, Rejection> {
    match parse_quantity(text) {
        Some(cores) if cores < 0.0 => Err(reject(
            format!("CPU cannot be negative: \"{text}\""),
            "write a number of cores, such as 2, or millicores, such as \"500m\"",
        )),
        Some(cores) if text.trim().ends_with('i') => Err(reject(
            format!("\"{text}\" uses a memory suffix for CPU"),
            format!("CPU is counted in cores (2) or millicores (\"500m\"), not {cores} bytes"),
        )),
        Some(cores) => Ok(cores),
        None => Err(reject(
            format!("\"{text}\" is not a CPU quantity"),
            "write a number of cores, such as 2 or \"1.5\", or millicores, such as \"500m\"",
        )),
    }
}

/// Parses a duration such as `90s`, `30m`, `6h`, `1h30m`, `2d` or `500ms`
/// into milliseconds. A leading `-` is allowed (for `timeadd`).
pub fn parse_duration_signed(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if body.is_empty() {
        return Err(format!("\"{text}\" is not a duration"));
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let number_length = rest.chars().take_while(|character| character.is_ascii_digit() || *character == '.').count();
        if number_length == 0 {
            return Err(format!("\"{text}\" is not a duration"));
        }
        let number: f64 = rest[..number_length].parse().map_err(|_| format!("\"{text}\" is not a duration"))?;
        rest = &rest[number_length..];
        let unit_length = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_length];
        rest = &rest[unit_length..];
        let milliseconds = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => return Err(format!("\"{text}\" is not a duration")),
        };
        total += number * milliseconds;
    }
    let total = total.round() as i64;
    Ok(if negative { -total } else { total })
}

/// The longest duration an attribute may ask for: a year. Anything longer
/// is a typo (and past about 292 million years, no clock can count it).
pub const MAX_DURATION_MILLISECONDS: i64 = 366 * 86_400_000;

/// Checks a non-negative duration of at most [`MAX_DURATION_MILLISECONDS`];
/// returns milliseconds.
pub fn check_duration(text: &str) -> Result<i64, Rejection> {
    match parse_duration_signed(text) {
        Ok(milliseconds) if milliseconds < 0 || text.trim().starts_with('-') => {
            Err(reject(format!("a duration cannot be negative: \"{text}\""), "write a positive duration such as \"6h\""))
        }
        Ok(milliseconds) if milliseconds > MAX_DURATION_MILLISECONDS => Err(reject(
            format!("\"{text}\" is longer than the longest duration mlops accepts (366d)"),
            "write a duration of at most a year, such as \"6h\" or \"30d\"",
        )),
        Ok(milliseconds) => Ok(milliseconds),
        Err(message) => {
            let lower = text.to_ascii_lowercase();
            let digits: String = lower.chars().filter(char::is_ascii_digit).collect();
            let guess = [("hour", "h"), ("hr", "h"), ("min", "m"), ("sec", "s"), ("day", "d"), ("ms", "ms")]
                .iter()
                .find(|(word, _)| lower.contains(word))
                .filter(|_| !digits.is_empty())
                .map(|(_, unit)| format!("did you mean \"{digits}{unit}\"? "));
            Err(reject(
                message,
                format!("{}durations are a number and a unit (ms, s, m, h, d), combined like \"1h30m\"", guess.unwrap_or_default()),
            ))
        }
    }
}

/// Checks a Kubernetes CronJob schedule: five fields (minute, hour, day of
/// month, month, day of week) of numbers in range, `*`, `a-b` ranges,
/// `/step` and `,` lists (months and days of the week may be named), or one
/// of `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
/// `@hourly`.
pub fn check_cron(text: &str) -> Result<(), Rejection> {
    const MACROS: &[&str] = &["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
    const MONTHS: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let trimmed = text.trim();
    let help = "write five fields, minute hour day-of-month month day-of-week, such as \"0 6 * * *\" (06:00 every day) or \"*/15 * * * *\", or @daily";
    if trimmed.starts_with('@') {
        return if MACROS.contains(&trimmed) {
            Ok(())
        } else {
            Err(reject(format!("\"{text}\" is not a schedule"), format!("the named schedules are {}", MACROS.join(", "))))
        };
    }
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err(reject(
            format!("\"{text}\" sets a time zone inside the schedule, which Kubernetes refuses"),
            "write the schedule without `TZ=`; it runs in the cluster's time zone",
        ));
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(reject(format!("\"{text}\" has {} field(s), not the 5 of a schedule", fields.len()), help));
    }
    let limits: [(&str, u32, u32, &[&str]); 5] = [
        ("a minute", 0, 59, &[]),
        ("an hour", 0, 23, &[]),
        ("a day of month", 1, 31, &[]),
        ("a month", 1, 12, MONTHS),
        ("a day of week", 0, 6, DAYS),
    ];
    for (field, (what, low, high, names)) in fields.iter().zip(limits) {
        let value = |part: &str| -> Option<u32> {
            if let Ok(number) = part.parse::<u32>() {
                return (low..=high).contains(&number).then_some(number);
            }
            let position = names.iter().position(|name| name.eq_ignore_ascii_case(part))? as u32;
            Some(position + low)
        };
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, Some(step)),
                None => (item, None),
            };
            let valid_step = step.is_none_or(|step| step.parse::<u32>().is_ok_and(|step| step > 0));
            let valid_range = match range {
                "*" | "?" => true,
                _ => match range.split_once('-') {
                    Some((from, to)) => value(from).zip(value(to)).is_some_and(|(from, to)| from <= to),
                    None => value(range).is_some(),
                },
            };
            if !valid_step || !valid_range {
                return Err(reject(format!("\"{item}\" is not {what} ({low}-{high}) in the schedule \"{text}\""), help));
            }
        }
    }
    Ok(())
}

/// Checks an object-storage URI (`s3://bucket/prefix`, or `file://` and plain
/// paths where `allow_local` is set).
pub fn check_uri(text: &str, allow_local: bool) -> Result<(), Rejection> {
    if let Some(rest) = text.strip_prefix("s3://") {
        let bucket = rest.split('/').next().unwrap_or("");
        if bucket.is_empty() {
            return Err(reject(format!("\"{text}\" names no bucket"), "write \"s3://BUCKET/PREFIX/\""));
        }
        return check_bucket_name(bucket);
    }
    if allow_local && (text.starts_with("file://") || text.starts_with('/') || text.starts_with("./") || text.starts_with("../")) {
        return Ok(());
    }
    let help = if text.starts_with("s3:/") || text.starts_with("s3:") {
        format!("did you mean \"s3://{}\"?", text.trim_start_matches("s3:").trim_start_matches('/'))
    } else if allow_local {
        "write \"s3://BUCKET/PREFIX/\", or a local path such as \"./logs/\"".to_owned()
    } else {
        "write \"s3://BUCKET/PREFIX/\"".to_owned()
    };
    Err(reject(format!("\"{text}\" is not an object-storage URI"), help))
}

/// Checks a bucket name against S3's naming rules. Every provider uses
/// them, the local one included: a configuration moves between providers
/// unchanged, and a valid name is always one safe path component (never
/// `..`, never a `/`).
pub fn check_bucket_name(name: &str) -> Result<(), Rejection> {
    const RULES: &str = "bucket names are 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit";
    let suggestion = || {
        let mut fixed: String = name
            .to_ascii_lowercase()
            .chars()
            .map(|character| if character.is_ascii_lowercase() || character.is_ascii_digit() || character == '.' { character } else { '-' })
            .collect();
        while fixed.contains("..") {
            fixed = fixed.replace("..", ".");
        }
        let fixed = fixed.trim_matches(|character: char| character == '-' || character == '.').to_owned();
        if (3..=63).contains(&fixed.len()) && fixed != name {
            format!("did you mean \"{fixed}\"? {RULES}")
        } else {
            RULES.to_owned()
        }
    };
    let shown: String = name.chars().take(80).collect();
    if name.len() < 3 || name.len() > 63 {
        let length = name.chars().count();
        let plural = if length == 1 { "" } else { "s" };
        return Err(reject(format!("\"{shown}\" is not a valid bucket name: it is {length} character{plural} long"), suggestion()));
    }
    if let Some(bad) = name
        .chars()
        .find(|character| !(character.is_ascii_lowercase() || character.is_ascii_digit() || *character == '-' || *character == '.'))
    {
        let what = match bad {
            'A'..='Z' => "an upper-case letter".to_owned(),
            ' ' => "a space".to_owned(),
            '/' | '\\' => format!("`{bad}`: a bucket name is one name, not a path"),
            other => format!("`{}`", other.escape_debug()),
        };
        return Err(reject(format!("\"{shown}\" is not a valid bucket name: it contains {what}"), suggestion()));
    }
    let edges_ok =
        |character: Option<char>| character.is_some_and(|character| character.is_ascii_lowercase() || character.is_ascii_digit());
    if !edges_ok(name.chars().next()) || !edges_ok(name.chars().last()) {
        return Err(reject(format!("\"{shown}\" is not a valid bucket name: it must start and end with a letter or digit"), suggestion()));
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Err(reject(format!("\"{shown}\" is not a valid bucket name: a dot must sit between letters or digits"), suggestion()));
    }
    if name.split('.').count() == 4
        && name.split('.').all(|part| !part.is_empty() && part.chars().all(|character| character.is_ascii_digit()))
    {
        return Err(reject(format!("\"{shown}\" is not a valid bucket name: it reads as an IP address"), RULES));
    }
    let reserved_prefix = ["xn--", "sthree-", "amzn-s3-demo-"].into_iter().find(|prefix| name.starts_with(prefix));
    let reserved_suffix = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"].into_iter().find(|suffix| name.ends_with(suffix));
    if let Some(reserved) = reserved_prefix.or(reserved_suffix) {
        return Err(reject(format!("\"{shown}\" is not a valid bucket name: `{reserved}` is reserved by S3"), "choose another name"));
    }
    Ok(())
}

/// Checks a model's registered name: one or more components separated by
/// `/`, each of letters, digits, `.`, `_` and `-`, starting with a letter or
/// digit. Registries read it as a repository path, and the local registry
/// as a folder, so it can never climb out (`..`) or start at the root.
pub fn check_registry_name(name: &str) -> Result<(), Rejection> {
    const RULES: &str =
        "a registered name is letters, digits, `.`, `_` and `-`, in parts separated by `/`, each part starting with a letter or digit";
    let shown: String = name.chars().take(80).collect();
    if name.is_empty() || name.len() > 200 {
        return Err(reject(format!("\"{shown}\" is not a valid registered name: it must have 1 to 200 characters"), RULES));
    }
    for part in name.split('/') {
        let first_ok = part.chars().next().is_some_and(|character| character.is_ascii_alphanumeric());
        let rest_ok = part.chars().all(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-'));
        if !first_ok || !rest_ok {
            let why = if part.is_empty() {
                "it has an empty part".to_owned()
            } else if part == "." || part == ".." {
                format!("`{part}` is not a name")
            } else {
                format!("the part `{}` is not allowed", part.chars().take(40).collect::<String>())
            };
            return Err(reject(format!("\"{shown}\" is not a valid registered name: {why}"), RULES));
        }
    }
    Ok(())
}

/// Names of declarations: a letter, then letters, digits, `_` or `-`.
pub fn is_identifier(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == '-')
}

/// A version as three numbers; missing parts are zero.
pub fn parse_version(text: &str) -> Option<[u64; 3]> {
    let mut parts = [0u64; 3];
    let core = text.trim().trim_start_matches('v').split(['-', '+']).next()?;
    let mut count = 0;
    for (index, part) in core.split('.').enumerate() {
        if index >= 3 {
            return None;
        }
        parts[index] = part.parse().ok()?;
        count += 1;
    }
    (count > 0).then_some(parts)
}

/// Checks a constraint such as `">= 0.1, < 2"` against `version`.
/// Returns Ok(true/false) for satisfied/unsatisfied, Err for an unreadable constraint.
pub fn version_satisfies(constraint: &str, version: &str) -> Result<bool, String> {
    let Some(actual) = parse_version(version) else { return Err(format!("\"{version}\" is not a version")) };
    let mut satisfied = true;
    for clause in constraint.split(',') {
        let clause = clause.trim();
        let operator_length = clause.chars().take_while(|character| "<>=!~".contains(*character)).count();
        let (operator, rest) = clause.split_at(operator_length);
        let rest = rest.trim();
        let Some(wanted) = parse_version(rest) else {
            return Err(format!("\"{clause}\" is not a version comparison"));
        };
        let precision = rest.trim_start_matches('v').split(['-', '+']).next().unwrap_or("").split('.').count();
        let holds = match operator {
            "" | "=" | "==" => actual == wanted,
            "!=" => actual != wanted,
            ">" => actual > wanted,
            ">=" => actual >= wanted,
            "<" => actual < wanted,
            "<=" => actual <= wanted,
            "~>" => {
                // Pessimistic: the last given part may grow, the ones before are fixed.
                let fixed = precision.saturating_sub(1).max(1);
                actual >= wanted && actual[..fixed] == wanted[..fixed]
            }
            other => return Err(format!("`{other}` is not a comparison; use =, !=, >, >=, <, <= or ~>")),
        };
        satisfied &= holds;
    }
    Ok(satisfied)
}

/// Parses a timestamp into microseconds since 1970-01-01T00:00:00Z: a date
/// (`2026-11-27`, midnight UTC), or a date and a time of day separated by
/// `T` or a space (`2026-11-27T09:30:00`, `2026-11-27 09:30:00.250`), with an
/// optional `Z` or offset (`+02:00`, `-0500`). Without one it is UTC. Years
/// 0001 to 9999; seconds up to 60 (a leap second counts as the next one).
pub fn parse_timestamp_micros(text: &str) -> Option<i64> {
    let text = text.trim().as_bytes();
    let number = |bytes: &[u8]| -> Option<i64> {
        if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(bytes.iter().fold(0i64, |total, digit| total * 10 + i64::from(digit - b'0')))
    };
    if text.len() < 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(&text[0..4])?, number(&text[5..7])?, number(&text[8..10])?);
    if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    let mut rest = &text[10..];
    if rest.is_empty() {
        return Some(micros);
    }
    if !matches!(rest[0], b'T' | b't' | b' ') || rest.len() < 6 || rest[3] != b':' {
        return None;
    }
    let (hour, minute) = (number(&rest[1..3])?, number(&rest[4..6])?);
    rest = &rest[6..];
    let mut second = 0;
    if rest.first() == Some(&b':') {
        second = number(rest.get(1..3)?)?;
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let digits = rest[1..].iter().take_while(|byte| byte.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            // Microseconds: the first six digits, the rest dropped.
            let kept = &rest[1..1 + digits.min(6)];
            micros += number(kept)? * 10i64.pow(6 - kept.len() as u32);
            rest = &rest[1 + digits..];
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    micros += ((hour * 60 + minute) * 60 + second) * 1_000_000;
    match rest {
        [] | [b'Z'] | [b'z'] => Some(micros),
        [sign @ (b'+' | b'-'), offset @ ..] => {
            let (hours, minutes) = match offset {
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (number(&[*h1, *h2])?, number(&[*m1, *m2])?),
                [h1, h2] => (number(&[*h1, *h2])?, 0),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = (hours * 60 + minutes) * 60_000_000;
            Some(if *sign == b'+' { micros - offset } else { micros + offset })
        }
        _ => None,
    }
}

/// Writes microseconds since 1970-01-01T00:00:00Z as RFC 3339 in UTC
/// (`2026-11-27T09:30:00Z`, with a fraction only when there is one): what
/// [`parse_timestamp_micros`] reads back to the same number.
pub fn format_timestamp_micros(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    let within = micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let seconds = within / 1_000_000;
    let fraction = within % 1_000_000;
    let mut text = format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {

    #[test]
    fn schedules_are_read_as_a_cronjob_reads_them() {
        for good in ["0 6 * * *", "*/15 * * * *", "0 6-18/2 1,15 JAN-MAR mon-fri", "@daily", "@hourly", " 5 4 * * 0 ", "0 0 ? * *"] {
            assert!(check_cron(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("0 25 * * *", "is not an hour (0-23)"),
            ("60 * * * *", "is not a minute"),
            ("0 0 6 * * *", "has 6 field(s)"),
            ("0 6 * *", "has 4 field(s)"),
            ("0 6 0 * *", "is not a day of month"),
            ("0 6 * 13 *", "is not a month"),
            ("0 6 * * 7-1", "is not a day of week"),
            ("*/0 * * * *", "is not a minute"),
            ("@often", "is not a schedule"),
            ("TZ=UTC 0 6 * * *", "sets a time zone"),
        ] {
            let rejection = check_cron(bad).unwrap_err();
            assert!(rejection.message.contains(says), "{bad}: {}", rejection.message);
        }
    }

    #[test]
    fn timestamps_are_read_in_the_common_forms() {
        let day = 86_400_000_000i64;
        assert_eq!(parse_timestamp_micros("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp_micros("1970-01-02T00:00:00Z"), Some(day));
        assert_eq!(parse_timestamp_micros("2000-03-01 00:00:00"), Some(11_017 * day));
        assert_eq!(parse_timestamp_micros("2024-02-29T12:30:15.25Z"), Some(19_782 * day + 45_015_250_000));
        assert_eq!(parse_timestamp_micros("2024-02-29T14:30:15.250000999+02:00"), Some(19_782 * day + 45_015_250_000));
        assert_eq!(parse_timestamp_micros("2024-02-29T07:30:15.25-0500"), Some(19_782 * day + 45_015_250_000));
        assert_eq!(parse_timestamp_micros("1969-12-31T23:59:59Z"), Some(-1_000_000));
        assert_eq!(parse_timestamp_micros("2024-02-29T12:30"), Some(19_782 * day + 45_000_000_000));
        for bad in [
            "",
            "2023-02-29",
            "2024-13-01",
            "2024-1-01",
            "yesterday",
            "2024-01-01T25:00:00",
            "2024-01-01T10:00:00+2",
            "2024-01-01T10:00:00.Z",
        ] {
            assert_eq!(parse_timestamp_micros(bad), None, "{bad}");
        }
    }
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(check_memory("32Gi"), Ok(32.0 * 1_073_741_824.0));
        assert_eq!(check_memory("1G"), Ok(1e9));
        let rejection = check_memory("32GB").unwrap_err();
        assert!(rejection.help.contains("\"32Gi\""), "{rejection:?}");
        assert!(check_memory("512m").is_err());
        assert_eq!(check_cpu("500m"), Ok(0.5));
        assert!(check_cpu("2Gi").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(check_duration("1h30m"), Ok(5_400_000));
        assert_eq!(check_duration("500ms"), Ok(500));
        let rejection = check_duration("6 hours").unwrap_err();
        assert!(rejection.help.contains("\"6h\""), "{rejection:?}");
        assert!(check_duration("").is_err());
        assert_eq!(parse_duration_signed("-2h"), Ok(-7_200_000));
    }

    #[test]
    fn versions() {
        assert_eq!(version_satisfies(">= 0.1", "0.1.0"), Ok(true));
        assert_eq!(version_satisfies(">= 0.1, < 0.2", "0.2.0"), Ok(false));
        assert_eq!(version_satisfies("~> 0.1", "0.9.3"), Ok(true));
        assert_eq!(version_satisfies("~> 0.1.2", "0.2.0"), Ok(false));
        assert!(version_satisfies("at least 1", "0.1.0").is_err());
    }

    #[test]
    fn bucket_names_follow_s3() {
        for good in ["acme-lake", "a.b.c", "lake-2026", "abc"] {
            assert_eq!(check_bucket_name(good), Ok(()), "{good}");
        }
        for bad in
            ["UPPER-Lake", "Bad_Lake", "has space", "../..", "..", "/some/dir", "ab", "-lake", "lake-", "a..b", "192.168.1.1", "xn--abc"]
        {
            assert!(check_bucket_name(bad).is_err(), "{bad} was accepted");
        }
        assert!(check_bucket_name("UPPER-Lake").unwrap_err().help.contains("\"upper-lake\""));
        assert!(check_bucket_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn registered_names_cannot_climb() {
        for good in ["fraud-detector", "team/fraud", "Fraud_v2.1"] {
            assert_eq!(check_registry_name(good), Ok(()), "{good}");
        }
        for bad in ["..", ".", "../x", "/abs", "a//b", "a/", "has space", "", ".hidden"] {
            assert!(check_registry_name(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn durations_have_a_ceiling() {
        assert!(check_duration("99999999999999999999999h").unwrap_err().message.contains("longest duration"));
        assert_eq!(check_duration("366d"), Ok(MAX_DURATION_MILLISECONDS));
        assert!(check_duration("367d").is_err());
    }

    #[test]
    fn uris() {
        assert!(check_uri("s3://acme-lake/logs/", false).is_ok());
        assert!(check_uri("s3:/acme/logs", false).unwrap_err().help.contains("s3://acme/logs"));
        assert!(check_uri("./logs", true).is_ok());
    }
}
