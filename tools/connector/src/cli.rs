//! The small argument parser the operations subcommands share: positional words, flags, and
//! options with a value; anything else is a usage error (exit status 2).

use crate::AdminError;

/// Arguments split into words and options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// The words, in order.
    pub positional: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

/// Splits `args`: `flags` take no value, `valued` take the next argument (or `--name=value`).
pub fn parse(args: &[String], flags: &[&str], valued: &[&str]) -> Result<Args, AdminError> {
    let mut parsed = Args::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some((name, value)) = arg.split_once('=').filter(|(n, _)| n.starts_with("--")) {
            if !valued.contains(&name) {
                return Err(AdminError::Usage(format!("unknown option {name}")));
            }
            parsed
                .options
                .push((name.to_owned(), Some(value.to_owned())));
        } else if flags.contains(&arg.as_str()) {
            parsed.options.push((arg.clone(), None));
        } else if valued.contains(&arg.as_str()) {
            let value = it
                .next()
                .ok_or_else(|| AdminError::Usage(format!("{arg} needs a value")))?;
            parsed.options.push((arg.clone(), Some(value.clone())));
        } else if arg.starts_with("--") {
            return Err(AdminError::Usage(format!("unknown option {arg}")));
        } else {
            parsed.positional.push(arg.clone());
        }
    }
    Ok(parsed)
}

impl Args {
    /// The value of option `name` (the last one given).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// Whether flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(n, _)| n == name)
    }

    /// How many of `names` were given.
    pub fn count_of(&self, names: &[&str]) -> usize {
        names.iter().filter(|n| self.flag(n)).count()
    }
}

/// Whether the arguments ask for help (`--help`, `-h`).
pub fn wants_help(args: &[String]) -> bool {
    args.iter().any(|a| a == "--help" || a == "-h")
}

/// Parses `90s`, `15m`, `6h`, `2d` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let unit = text.chars().last()?;
    let number: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => number,
        'm' => number.checked_mul(60)?,
        'h' => number.checked_mul(3_600)?,
        'd' => number.checked_mul(86_400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(seconds))
}

/// An age for people: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
pub fn format_age(age: std::time::Duration) -> String {
    let s = age.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3_600 => format!("{}m {}s", s / 60, s % 60),
        3_600..86_400 => format!("{}h {}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn options_take_values_flags_do_not_and_strangers_are_refused() {
        let args = parse(
            &strings(&["redrive", "Outbound", "--older-than=2h", "--all"]),
            &["--all"],
            &["--older-than"],
        )
        .expect("parsed");
        assert_eq!(args.positional, ["redrive", "Outbound"]);
        assert_eq!(args.value("--older-than"), Some("2h"));
        assert!(args.flag("--all"));
        assert!(parse(&strings(&["--bogus"]), &[], &[]).is_err());
        assert!(parse(&strings(&["--limit"]), &[], &["--limit"]).is_err());
    }

    #[test]
    fn durations_and_ages_read_and_print_as_people_write_them() {
        assert_eq!(
            parse_duration("90s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("2h"),
            Some(std::time::Duration::from_secs(7_200))
        );
        assert_eq!(
            parse_duration("3d"),
            Some(std::time::Duration::from_secs(259_200))
        );
        assert_eq!(parse_duration("2 hours"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(format_age(std::time::Duration::from_secs(45)), "45s");
        assert_eq!(format_age(std::time::Duration::from_secs(7_500)), "2h 5m");
        assert_eq!(format_age(std::time::Duration::from_secs(190_000)), "2d 4h");
    }
}
