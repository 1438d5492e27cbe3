//! What the operator page shows, computed from records: the filters it accepts (a date range of
//! whole UTC days and a flow) and the delivery tally per flow. Pure: the adapters read the records.

use crate::domain::outbound::MessageFlow;
use crate::domain::sending::DeliveryState;
use jiff::civil::Date;
use serde::Serialize;

/// The longest range one page view reads (each day is one query of the by-day index).
pub const MAX_DAYS: i64 = 31;
/// The range shown when none is asked for: the last seven days, today included.
pub const DEFAULT_DAYS: i64 = 7;

/// Whole UTC days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
}

impl DayRange {
    /// Every day of the range, in order.
    pub fn days(&self) -> Vec<Date> {
        let mut days = Vec::new();
        let mut day = self.from;
        while day <= self.to {
            days.push(day);
            match day.tomorrow() {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        days
    }

    /// The first millisecond of `from` and the first of the day after `to` (Unix ms, UTC).
    pub fn bounds_ms(&self) -> (i64, i64) {
        let start = |d: Date| {
            d.to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .map_or(0, |z| z.timestamp().as_millisecond())
        };
        let end = self.to.tomorrow().map_or(i64::MAX, start);
        (start(self.from), end)
    }
}

/// A filter the page cannot use, with the words it shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// Not `YYYY-MM-DD`.
    #[error("`{field}` must be a date as YYYY-MM-DD, not {given:?}")]
    NotADate {
        /// `from` or `to`.
        field: &'static str,
        /// What was sent (truncated).
        given: String,
    },
    /// `from` after `to`.
    #[error("`from` ({from}) is after `to` ({to})")]
    Reversed {
        /// First day asked.
        from: Date,
        /// Last day asked.
        to: Date,
    },
    /// More than [`MAX_DAYS`].
    #[error("a range holds at most {MAX_DAYS} days; {days} were asked")]
    TooLong {
        /// Days asked.
        days: i64,
    },
    /// No such flow.
    #[error("`flow` must be one of {known}, not {given:?}")]
    UnknownFlow {
        /// What was sent (truncated).
        given: String,
        /// The names accepted.
        known: String,
    },
}

fn date(field: &'static str, text: &str) -> Result<Date, FilterError> {
    text.trim()
        .parse::<Date>()
        .map_err(|_| FilterError::NotADate {
            field,
            given: text.chars().take(40).collect(),
        })
}

/// The range `from`..=`to` asks for; missing ends default to the last [`DEFAULT_DAYS`] up to
/// `today`.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
    today: Date,
) -> Result<DayRange, FilterError> {
    let to = match to.filter(|t| !t.trim().is_empty()) {
        Some(text) => date("to", text)?,
        None => today,
    };
    let from = match from.filter(|f| !f.trim().is_empty()) {
        Some(text) => date("from", text)?,
        None => to
            .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
            .unwrap_or(to),
    };
    if from > to {
        return Err(FilterError::Reversed { from, to });
    }
    let days = i64::from(
        from.until(to)
            .map_or(i32::MAX, |span| span.get_days())
            .saturating_add(1),
    );
    if days > MAX_DAYS {
        return Err(FilterError::TooLong { days });
    }
    Ok(DayRange { from, to })
}

/// The page's name of a flow (`review`, `field_ingest`, …).
pub fn flow_name(flow: MessageFlow) -> &'static str {
    match flow {
        MessageFlow::Conversation => "conversation",
        MessageFlow::OptOut => "opt_out",
        MessageFlow::Review => "review",
        MessageFlow::FieldIngest => "field_ingest",
        MessageFlow::RightsExpiry => "rights_expiry",
        MessageFlow::Campaign => "campaign",
        MessageFlow::Sharing => "sharing",
        MessageFlow::UgcIntake => "ugc_intake",
        MessageFlow::IssueAlert => "issue_alert",
    }
}

/// The flow a `flow` filter names; `None` (every flow) when empty or `all`.
pub fn parse_flow(text: Option<&str>) -> Result<Option<MessageFlow>, FilterError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty() && *t != "all") else {
        return Ok(None);
    };
    MessageFlow::ALL
        .into_iter()
        .find(|f| flow_name(*f) == text)
        .map(Some)
        .ok_or_else(|| FilterError::UnknownFlow {
            given: text.chars().take(40).collect(),
            known: MessageFlow::ALL
                .into_iter()
                .map(flow_name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Messages of one flow by their latest delivery state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowDeliveries {
    /// The flow's page name.
    pub flow: &'static str,
    /// Accepted by Graph, no status yet.
    pub accepted: u64,
    /// Left Meta's servers.
    pub sent: u64,
    /// On the phone.
    pub delivered: u64,
    /// Opened.
    pub read: u64,
    /// Failed.
    pub failed: u64,
    /// All of them.
    pub total: u64,
}

/// Tallies sent messages (their flow and latest state) per flow, flows in [`MessageFlow::ALL`]
/// order, only flows that sent something.
pub fn tally(
    messages: impl IntoIterator<Item = (MessageFlow, DeliveryState)>,
) -> Vec<FlowDeliveries> {
    let mut rows: Vec<FlowDeliveries> = MessageFlow::ALL
        .into_iter()
        .map(|flow| FlowDeliveries {
            flow: flow_name(flow),
            ..FlowDeliveries::default()
        })
        .collect();
    for (flow, state) in messages {
        let Some(row) = MessageFlow::ALL
            .iter()
            .position(|f| *f == flow)
            .and_then(|i| rows.get_mut(i))
        else {
            continue;
        };
        row.total += 1;
        match state {
            DeliveryState::Accepted => row.accepted += 1,
            DeliveryState::Sent => row.sent += 1,
            DeliveryState::Delivered => row.delivered += 1,
            DeliveryState::Read => row.read += 1,
            DeliveryState::Failed => row.failed += 1,
        }
    }
    rows.retain(|r| r.total > 0);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn no_range_means_the_last_seven_days_and_a_range_is_checked() {
        let today = date(2026, 12, 3);
        let range = parse_range(None, None, today).expect("default");
        assert_eq!((range.from, range.to), (date(2026, 11, 27), today));
        assert_eq!(range.days().len(), 7);
        let year_end = parse_range(Some("2026-12-30"), Some("2027-01-02"), today).expect("ok");
        assert_eq!(year_end.days().len(), 4);
        let (start, end) = year_end.bounds_ms();
        assert_eq!(end - start, 4 * 86_400_000);
        assert!(matches!(
            parse_range(Some("2026-12-05"), Some("2026-12-01"), today),
            Err(FilterError::Reversed { .. })
        ));
        assert!(matches!(
            parse_range(Some("2026-01-01"), Some("2026-03-01"), today),
            Err(FilterError::TooLong { days: 60 })
        ));
        let bad = parse_range(Some("yesterday"), None, today).expect_err("not a date");
        assert_eq!(
            bad.to_string(),
            "`from` must be a date as YYYY-MM-DD, not \"yesterday\""
        );
    }

    #[test]
    fn a_flow_filter_names_a_flow_or_says_which_exist() {
        assert_eq!(parse_flow(Some("review")), Ok(Some(MessageFlow::Review)));
        assert_eq!(parse_flow(Some("all")), Ok(None));
        assert_eq!(parse_flow(None), Ok(None));
        let unknown = parse_flow(Some("reviews")).expect_err("unknown");
        assert!(
            unknown.to_string().contains("review, field_ingest"),
            "{unknown}"
        );
    }

    #[test]
    fn deliveries_are_tallied_per_flow_by_latest_state() {
        let rows = tally([
            (MessageFlow::Review, DeliveryState::Read),
            (MessageFlow::Review, DeliveryState::Delivered),
            (MessageFlow::Review, DeliveryState::Failed),
            (MessageFlow::Sharing, DeliveryState::Accepted),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            FlowDeliveries {
                flow: "review",
                accepted: 0,
                sent: 0,
                delivered: 1,
                read: 1,
                failed: 1,
                total: 3
            }
        );
        assert_eq!((rows[1].flow, rows[1].accepted), ("sharing", 1));
    }
}
