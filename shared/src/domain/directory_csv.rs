//! The contact directory as CSV: parsing and checking an import file row by row (every bad row
//! reported with its line number and reason), and writing the export. Pure: the command that
//! reads files and writes through `ContactDirectory` lives in `tools/connector`.
//!
//! Columns: `phone` (E.164 or BSUID, required), `name`, `roles` (`;`-separated), `regions`
//! (`;`-separated), `language`, `time_zone` (IANA), `quiet_hours` (`22:00-07:00`), `project_tag`,
//! `opted_in_at` (RFC 3339 or `YYYY-MM-DD`), `opted_in_source`. The export adds `opted_out_at`,
//! which the connector records and an import never sets (a recorded opt-out is kept).

use crate::domain::contact::{Contact, OptIn, QuietHours, Role, WhatsAppAddress};
use crate::pseudonym::Pseudonymizer;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The import's columns, in the export's order.
pub const COLUMNS: [&str; 10] = [
    "phone",
    "name",
    "roles",
    "regions",
    "language",
    "time_zone",
    "quiet_hours",
    "project_tag",
    "opted_in_at",
    "opted_in_source",
];

/// Written by the export after [`COLUMNS`]; accepted and ignored by the import.
pub const OPTED_OUT_COLUMN: &str = "opted_out_at";

/// Why a row cannot be imported. Never holds the number itself (personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowReason {
    /// The phone cell is empty.
    MissingNumber,
    /// Not E.164 (`+` and 7 to 15 digits) nor a business-scoped user id.
    BadNumber,
    /// The same number (in any format) is on an earlier line.
    DuplicateNumber {
        /// Where it first appeared.
        first_line: usize,
    },
    /// A role the connector does not know.
    UnknownRole(String),
    /// Not an IANA time zone name.
    BadTimeZone(String),
    /// Not `HH:MM-HH:MM`.
    BadQuietHours(String),
    /// Not a WhatsApp language code.
    BadLanguage(String),
    /// `opted_in_at` is neither RFC 3339 nor `YYYY-MM-DD`.
    BadOptInTime(String),
    /// `opted_in_source` without `opted_in_at`.
    OptInSourceWithoutTime,
    /// The row has another number of cells than the header.
    WrongCellCount {
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
}

impl fmt::Display for RowReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingNumber => f.write_str("bad number: the phone cell is empty"),
            Self::BadNumber => f.write_str(
                "bad number: not E.164 (+, country code, 7 to 15 digits) nor a business-scoped user id (CC.<id>)",
            ),
            Self::DuplicateNumber { first_line } => {
                write!(f, "duplicate number: already on line {first_line}")
            }
            Self::UnknownRole(role) => write!(
                f,
                "unknown role `{role}` (known: {})",
                Role::ALL.map(Role::as_str).join(", ")
            ),
            Self::BadTimeZone(tz) => write!(
                f,
                "bad time zone `{tz}`: use an IANA name such as Europe/Paris"
            ),
            Self::BadQuietHours(q) => {
                write!(f, "bad quiet hours `{q}`: use HH:MM-HH:MM such as 22:00-07:00")
            }
            Self::BadLanguage(l) => write!(f, "bad language `{l}`: use a code such as en_US or fr"),
            Self::BadOptInTime(t) => write!(
                f,
                "bad opted_in_at `{t}`: use RFC 3339 (2026-11-02T09:00:00Z) or YYYY-MM-DD"
            ),
            Self::OptInSourceWithoutTime => f.write_str("opted_in_source is set but opted_in_at is empty"),
            Self::WrongCellCount { expected, found } => {
                write!(f, "has {found} cells; the header has {expected}")
            }
        }
    }
}

/// A bad row: its line in the file (the header is line 1) and every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// Line where the row starts.
    pub line: usize,
    /// What is wrong with it.
    pub reasons: Vec<RowReason>,
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reasons: Vec<String> = self.reasons.iter().map(ToString::to_string).collect();
        write!(f, "line {}: {}", self.line, reasons.join("; "))
    }
}

/// The file cannot be read as a directory CSV at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    /// No header line.
    #[error("the file is empty: it needs a header line naming the columns")]
    Empty,
    /// The header lacks `phone`.
    #[error("line 1: the header has no `phone` column")]
    NoPhoneColumn,
    /// The header names a column this importer does not know.
    #[error("line 1: unknown column `{0}` (known: {known})", known = COLUMNS.join(", "))]
    UnknownColumn(String),
    /// A column appears twice in the header.
    #[error("line 1: column `{0}` appears twice")]
    RepeatedColumn(String),
    /// A quoted cell never closes.
    #[error("line {0}: a quoted cell is never closed")]
    UnclosedQuote(usize),
}

/// An import file, checked: the contacts of its good rows and the problems of its bad ones.
#[derive(Debug, Clone)]
pub struct ImportFile {
    /// Good rows: their line and the entry to write.
    pub contacts: Vec<(usize, Contact)>,
    /// Bad rows, in file order.
    pub problems: Vec<RowProblem>,
}

/// Splits CSV text (RFC 4180: `,`, `"` quotes with `""` escapes, CRLF or LF) into records with
/// the line each starts on; blank lines are skipped.
pub fn records(text: &str) -> Result<Vec<(usize, Vec<String>)>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut start_line = 1;
    let mut cell = String::new();
    let mut row: Vec<String> = Vec::new();
    let mut in_quotes = false;
    let mut row_started = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    cell.push('\n');
                }
                c => cell.push(c),
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                row_started = true;
            }
            ',' => {
                row.push(std::mem::take(&mut cell));
                row_started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if row_started || !cell.is_empty() {
                    row.push(std::mem::take(&mut cell));
                    out.push((start_line, std::mem::take(&mut row)));
                }
                row_started = false;
                line += 1;
                start_line = line;
            }
            c => {
                cell.push(c);
                row_started = true;
            }
        }
    }
    if in_quotes {
        return Err(CsvError::UnclosedQuote(start_line));
    }
    if row_started || !cell.is_empty() {
        row.push(cell);
        out.push((start_line, row));
    }
    Ok(out)
}

/// Parses and checks an import file. `source` is the default opt-in source of rows that give a
/// time but no source (`import:contacts-2026-11.csv`).
pub fn parse_import(
    text: &str,
    pseudonyms: &Pseudonymizer,
    source: &str,
) -> Result<ImportFile, CsvError> {
    let mut rows = records(text)?.into_iter();
    let (_, header) = rows.next().ok_or(CsvError::Empty)?;
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in header.iter().enumerate() {
        let name = name.trim();
        let known = COLUMNS
            .iter()
            .chain(std::iter::once(&OPTED_OUT_COLUMN))
            .find(|c| c.eq_ignore_ascii_case(name))
            .ok_or_else(|| CsvError::UnknownColumn(name.to_owned()))?;
        if index.insert(known, i).is_some() {
            return Err(CsvError::RepeatedColumn(name.to_owned()));
        }
    }
    if !index.contains_key("phone") {
        return Err(CsvError::NoPhoneColumn);
    }
    let mut seen: HashMap<crate::pseudonym::UserPseudonym, usize> = HashMap::new();
    let mut file = ImportFile {
        contacts: Vec::new(),
        problems: Vec::new(),
    };
    for (line, cells) in rows {
        if cells.len() != header.len() {
            file.problems.push(RowProblem {
                line,
                reasons: vec![RowReason::WrongCellCount {
                    expected: header.len(),
                    found: cells.len(),
                }],
            });
            continue;
        }
        let cell = |column: &str| {
            index
                .get(column)
                .map(|&i| cells[i].trim())
                .unwrap_or_default()
        };
        match parse_row(&cell, pseudonyms, source) {
            Err(reasons) => file.problems.push(RowProblem { line, reasons }),
            Ok(contact) => match seen.get(&contact.pseudonym) {
                Some(&first_line) => file.problems.push(RowProblem {
                    line,
                    reasons: vec![RowReason::DuplicateNumber { first_line }],
                }),
                None => {
                    seen.insert(contact.pseudonym.clone(), line);
                    file.contacts.push((line, contact));
                }
            },
        }
    }
    Ok(file)
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(';').map(str::trim).filter(|v| !v.is_empty())
}

fn parse_row<'a>(
    cell: &impl Fn(&str) -> &'a str,
    pseudonyms: &Pseudonymizer,
    source: &str,
) -> Result<Contact, Vec<RowReason>> {
    let mut reasons = Vec::new();
    let phone = cell("phone");
    let address = if phone.is_empty() {
        reasons.push(RowReason::MissingNumber);
        None
    } else if !(phone.starts_with('+') || phone.contains('.')) {
        reasons.push(RowReason::BadNumber);
        None
    } else {
        WhatsAppAddress::parse(phone)
            .map_err(|_| reasons.push(RowReason::BadNumber))
            .ok()
    };
    let mut roles = BTreeSet::new();
    for name in list(cell("roles")) {
        match Role::parse(name) {
            Some(role) => {
                roles.insert(role);
            }
            None => reasons.push(RowReason::UnknownRole(name.to_owned())),
        }
    }
    let optional = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let time_zone = optional(cell("time_zone"));
    if let Some(tz) = &time_zone
        && jiff::tz::TimeZone::get(tz).is_err()
    {
        reasons.push(RowReason::BadTimeZone(tz.clone()));
    }
    let quiet = cell("quiet_hours");
    let quiet_hours = if quiet.is_empty() {
        None
    } else {
        let parsed = QuietHours::parse(quiet);
        if parsed.is_none() {
            reasons.push(RowReason::BadQuietHours(quiet.to_owned()));
        }
        parsed
    };
    let language = optional(cell("language"));
    if let Some(l) = &language
        && !crate::templates::valid_language_code(l)
    {
        reasons.push(RowReason::BadLanguage(l.clone()));
    }
    let (at, given_source) = (cell("opted_in_at"), cell("opted_in_source"));
    let opted_in = match (at.is_empty(), given_source.is_empty()) {
        (true, true) => None,
        (true, false) => {
            reasons.push(RowReason::OptInSourceWithoutTime);
            None
        }
        (false, _) => match parse_time(at) {
            Some(at_ms) => Some(OptIn {
                at_ms,
                source: if given_source.is_empty() {
                    source.to_owned()
                } else {
                    given_source.to_owned()
                },
            }),
            None => {
                reasons.push(RowReason::BadOptInTime(at.to_owned()));
                None
            }
        },
    };
    let address = match address {
        Some(address) if reasons.is_empty() => address,
        _ => return Err(reasons),
    };
    let mut contact = Contact::new(pseudonyms.pseudonym(address.expose()));
    contact.address = Some(address);
    contact.name = optional(cell("name"));
    contact.roles = roles;
    contact.regions = list(cell("regions")).map(str::to_owned).collect();
    contact.language = language;
    contact.time_zone = time_zone;
    contact.quiet_hours = quiet_hours;
    contact.project_tag = optional(cell("project_tag"));
    contact.opted_in = opted_in;
    Ok(contact)
}

/// Unix milliseconds of an RFC 3339 time or of midnight UTC of a `YYYY-MM-DD` date.
fn parse_time(value: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(value, &Rfc3339).ok().or_else(|| {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(value, &format)
            .ok()
            .map(|d| d.midnight().assume_utc())
    })?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn format_time(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn quote(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) || value != value.trim() {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// Writes the export: [`COLUMNS`] then [`OPTED_OUT_COLUMN`], one row per contact with an address
/// (bare opt-out entries of unknown users have no number to write and are left out).
pub fn write_export(contacts: &[Contact]) -> String {
    let mut out = COLUMNS.join(",");
    out.push(',');
    out.push_str(OPTED_OUT_COLUMN);
    out.push('\n');
    for contact in contacts {
        let Some(address) = &contact.address else {
            continue;
        };
        let join = |items: Vec<&str>| items.join(";");
        let cells = [
            address.expose().to_owned(),
            contact.name.clone().unwrap_or_default(),
            join(contact.roles.iter().map(|r| r.as_str()).collect()),
            join(contact.regions.iter().map(String::as_str).collect()),
            contact.language.clone().unwrap_or_default(),
            contact.time_zone.clone().unwrap_or_default(),
            contact
                .quiet_hours
                .map(|q| q.to_string())
                .unwrap_or_default(),
            contact.project_tag.clone().unwrap_or_default(),
            contact
                .opted_in
                .as_ref()
                .map(|o| format_time(o.at_ms))
                .unwrap_or_default(),
            contact
                .opted_in
                .as_ref()
                .map(|o| o.source.clone())
                .unwrap_or_default(),
            contact.opted_out_at_ms.map(format_time).unwrap_or_default(),
        ];
        let cells: Vec<String> = cells.iter().map(|c| quote(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;

    fn pseudonyms() -> Pseudonymizer {
        Pseudonymizer::new(&Secret::new("test-key-0123456789abcdef0123456789"))
    }

    const HEADER: &str = "phone,name,roles,regions,language,time_zone,quiet_hours,project_tag,opted_in_at,opted_in_source\n";

    fn import(body: &str) -> ImportFile {
        parse_import(&format!("{HEADER}{body}"), &pseudonyms(), "import:test.csv").expect("parses")
    }

    #[test]
    fn a_good_row_becomes_a_contact_keyed_by_the_pseudonym_of_its_number() {
        let file = import(
            "+44 7700 900123,Ana Lima,approver;Legal,EU;UK,en_GB,Europe/London,22:00-07:00,BRIDGE-1,2026-11-02T09:00:00Z,hr-sync\n",
        );
        assert_eq!(file.problems, vec![]);
        let (line, contact) = &file.contacts[0];
        assert_eq!(*line, 2);
        assert_eq!(contact.pseudonym, pseudonyms().pseudonym("447700900123"));
        assert_eq!(
            contact.address.as_ref().map(|a| a.expose()),
            Some("+447700900123")
        );
        assert_eq!(contact.roles, BTreeSet::from([Role::Approver, Role::Legal]));
        assert_eq!(contact.regions, BTreeSet::from(["EU".into(), "UK".into()]));
        assert_eq!(contact.quiet_hours, QuietHours::parse("22:00-07:00"));
        assert_eq!(
            contact.opted_in,
            Some(OptIn {
                at_ms: 1_793_610_000_000,
                source: "hr-sync".into()
            })
        );
    }

    #[test]
    fn every_bad_row_is_reported_with_its_line_and_reason_and_never_the_number() {
        let file = import(concat!(
            "+447700900123,Ana,approver,,,,,,,\n",
            "07700 900124,Bo,field,,,,,,,\n",
            "+447700900125,Cy,boss,,,,,,,\n",
            "+44 7700 900123,Ana again,owner,,,,,,,\n",
            "+447700900126,Di,rep,,,Mars/Olympus,25:00-07:00,,,\n",
            "+447700900127,Ed,rep,,english,,,,yesterday,\n",
            "+447700900128,Fay,rep\n",
            ",Gil,rep,,,,,,,\n",
        ));
        let lines: Vec<(usize, String)> = file
            .problems
            .iter()
            .map(|p| (p.line, p.to_string()))
            .collect();
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert_eq!(lines[0].0, 3);
        assert!(lines[0].1.contains("bad number"));
        assert!(!lines[0].1.contains("900124"));
        assert_eq!(lines[1].0, 4);
        assert!(lines[1].1.contains("unknown role `boss`"));
        assert_eq!(lines[2].0, 5);
        assert!(lines[2].1.contains("duplicate number: already on line 2"));
        assert_eq!(lines[3].0, 6);
        assert!(lines[3].1.contains("bad time zone `Mars/Olympus`"));
        assert!(lines[3].1.contains("bad quiet hours `25:00-07:00`"));
        assert_eq!(lines[4].0, 7);
        assert!(lines[4].1.contains("bad language"));
        assert!(lines[4].1.contains("bad opted_in_at"));
        assert_eq!(lines[5].0, 8);
        assert!(lines[5].1.contains("has 3 cells"));
        assert_eq!(lines[6].0, 9);
        assert!(lines[6].1.contains("phone cell is empty"));
        assert_eq!(file.contacts.len(), 1);
    }

    #[test]
    fn quoted_cells_may_hold_commas_quotes_and_newlines_and_lines_still_count() {
        let file = import(concat!(
            "+447700900123,\"Lima, Ana \"\"AL\"\"\",approver,,,,,,,\n",
            "+447700900124,\"Two\nlines\",field,,,,,,,\n",
            "+447700900125,Cy,boss,,,,,,,\n",
        ));
        assert_eq!(file.contacts[0].1.name.as_deref(), Some("Lima, Ana \"AL\""));
        assert_eq!(file.contacts[1].1.name.as_deref(), Some("Two\nlines"));
        assert_eq!(file.problems[0].line, 5);
    }

    #[test]
    fn a_business_scoped_user_id_is_accepted_and_a_date_opt_in_takes_the_default_source() {
        let file = import("US.13491208655302741918,,ugc,,fr,,,,2026-11-02,\n");
        assert_eq!(file.problems, vec![]);
        let contact = &file.contacts[0].1;
        assert_eq!(
            contact.opted_in.as_ref().map(|o| o.source.as_str()),
            Some("import:test.csv")
        );
        assert!(matches!(
            contact.address.as_ref().map(WhatsAppAddress::recipient),
            Some(crate::whatsapp::messages::Recipient::UserId(_))
        ));
    }

    #[test]
    fn header_problems_stop_the_whole_file() {
        let p = pseudonyms();
        assert_eq!(
            parse_import("", &p, "s").expect_err("refused"),
            CsvError::Empty
        );
        assert_eq!(
            parse_import("name,roles\nAna,approver\n", &p, "s").expect_err("refused"),
            CsvError::NoPhoneColumn
        );
        assert_eq!(
            parse_import("phone,email\n", &p, "s").expect_err("refused"),
            CsvError::UnknownColumn("email".into())
        );
        assert_eq!(
            parse_import("phone,name\n+447700900123,\"Ana\n", &p, "s").expect_err("refused"),
            CsvError::UnclosedQuote(2)
        );
    }

    #[test]
    fn an_export_imports_back_to_the_same_contacts() {
        let file = import(concat!(
            "+447700900123,\"Lima, Ana\",approver;legal,EU,en_GB,Europe/London,22:00-07:00,BRIDGE-1,2026-11-02T09:00:00Z,hr\n",
            "US.13491208655302741918,,ugc,,,,,,,\n",
        ));
        let mut contacts: Vec<Contact> = file.contacts.into_iter().map(|(_, c)| c).collect();
        contacts[1].opted_out_at_ms = Some(1_762_074_000_000);
        let exported = write_export(&contacts);
        assert!(exported.starts_with("phone,name,roles,"));
        assert!(exported.contains(",2026-11-02T09:00:00Z,hr,\n"));
        let again = parse_import(&exported, &pseudonyms(), "import:test.csv").expect("parses");
        assert_eq!(again.problems, vec![]);
        let back: Vec<Contact> = again.contacts.into_iter().map(|(_, c)| c).collect();
        let mut expected = contacts.clone();
        // The opt-out is the connector's record: exported for reading, never imported.
        expected[1].opted_out_at_ms = None;
        assert_eq!(back, expected);
    }
}
