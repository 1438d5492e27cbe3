//! The connector's own configuration: one typed document (DAM field map, routing rules, alert windows,
//! template names, business numbers and their purpose), validated at cold start. A file locally,
//! an SSM parameter in AWS.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::PathBuf;

/// The whole document.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectorConfig {
    /// The WhatsApp side.
    pub whatsapp: WhatsAppSettings,
    /// The Orange Logic side.
    pub dam: DamSettings,
    /// Where incoming content goes.
    pub routing: Routing,
    /// When rights-expiry alerts fire.
    pub alerts: Alerts,
    /// Review requests (flow 1).
    #[serde(default)]
    pub review: ReviewConfig,
    /// Issue alerts (flow 7).
    #[serde(default)]
    pub issue_alerts: IssueAlertConfig,
    /// Campaign rollout (flow 4).
    #[serde(default)]
    pub campaign: CampaignConfig,
    /// Governed sharing (flow 5).
    #[serde(default)]
    pub sharing: SharingConfig,
}

/// Governed sharing (flow 5): the fields its rules read besides the field map's status, expiry
/// and brand compliance, and how files go (docs/sharing.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SharingConfig {
    /// Field naming the newer asset that replaced this one; non-empty = an old version
    /// (default `Custom.SupersededBy`).
    pub superseded_by_field: String,
    /// Field clearing the asset for external use (default `Custom.ExternalUse`).
    pub external_use_field: String,
    /// Values of that field meaning cleared, case-insensitive (default `yes`, `true`, `cleared`).
    pub external_use_values: Vec<String>,
    /// Field the words of `share <words> to <number>` are matched against, one criterion per
    /// word (default `CoreField.Keywords`).
    pub keywords_field: String,
    /// Field holding the file size in bytes (default `CoreField.FileSize`).
    pub file_size_field: String,
    /// GetLink format of the file sent (default `TRX`).
    pub link_format: String,
    /// Hours a link sent stays valid (default 72).
    pub link_hours: u32,
}

impl Default for SharingConfig {
    fn default() -> Self {
        Self {
            superseded_by_field: "Custom.SupersededBy".into(),
            external_use_field: "Custom.ExternalUse".into(),
            external_use_values: vec!["yes".into(), "true".into(), "cleared".into()],
            keywords_field: "CoreField.Keywords".into(),
            file_size_field: "CoreField.FileSize".into(),
            link_format: default_link_format(),
            link_hours: default_link_hours(),
        }
    }
}

/// Campaign rollout (flow 4): how a package's member assets are found, the links, and the
/// renditions a regional contact may ask for (docs/campaign.md).
#[derive(Debug, Clone, Deserialize)]
pub struct CampaignConfig {
    /// The package's field listing its member assets (their RecordIDs, `|` separated); empty
    /// when the instance has none (the message then links the package itself).
    #[serde(default)]
    pub members_field: String,
    /// Hours a link sent stays valid (default 72).
    #[serde(default = "default_link_hours")]
    pub link_hours: u32,
    /// Share-link format of the links in the notification (default `TRX`).
    #[serde(default = "default_link_format")]
    pub link_format: String,
    /// The renditions offered by "Request another format" (at most 10: one WhatsApp list).
    #[serde(default)]
    pub formats: Vec<RenditionFormat>,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        Self {
            members_field: String::new(),
            link_hours: default_link_hours(),
            link_format: default_link_format(),
            formats: Vec::new(),
        }
    }
}

/// One rendition: the DAM's format code (GetLink's `Format`) and how WhatsApp carries it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RenditionFormat {
    /// The instance's format code (`TRX`, `TR1`, ...).
    pub code: String,
    /// Shown in the list (max 24 characters).
    pub label: String,
    /// A line under the label (max 72 characters).
    #[serde(default)]
    pub description: Option<String>,
    /// `image` (JPEG/PNG) or `document` (anything else, with a file name).
    #[serde(default)]
    pub send_as: RenditionKind,
    /// The file name extension of a document (`pdf`, `tif`).
    #[serde(default)]
    pub extension: Option<String>,
}

/// How a rendition is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenditionKind {
    /// As an image message by link.
    Image,
    /// As a document message by link.
    #[default]
    Document,
}

/// Review requests (flow 1).
#[derive(Debug, Clone, Deserialize)]
pub struct ReviewConfig {
    /// Reasons a rejecting approver is offered as examples (free text is always accepted).
    #[serde(default)]
    pub reject_reasons: Vec<String>,
    /// Hours before the review deadline the one reminder goes out (default 24).
    #[serde(default = "default_reminder_hours")]
    pub reminder_before_hours: u32,
    /// Hours a link sent to an approver stays valid (default 72).
    #[serde(default = "default_link_hours")]
    pub link_hours: u32,
    /// Share-link format (default `TRX`).
    #[serde(default = "default_link_format")]
    pub link_format: String,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            reject_reasons: Vec::new(),
            reminder_before_hours: default_reminder_hours(),
            link_hours: default_link_hours(),
            link_format: default_link_format(),
        }
    }
}

fn default_reminder_hours() -> u32 {
    24
}

fn default_link_hours() -> u32 {
    72
}

fn default_link_format() -> String {
    "TRX".into()
}

/// Issue alerts (flow 7).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IssueAlertConfig {
    /// The team contact (a WhatsApp number or BSUID) alerted when an asset's owner is not in the
    /// directory; none by default (the gap is then only logged and noted on the asset).
    #[serde(default)]
    pub fallback_contact: Option<String>,
}

/// WhatsApp numbers and templates.
#[derive(Debug, Clone, Deserialize)]
pub struct WhatsAppSettings {
    /// Business phone numbers and what each is for.
    pub business_numbers: Vec<BusinessNumber>,
    /// Approved message templates by the connector's use for them.
    pub templates: BTreeMap<TemplateUse, TemplateRef>,
}

/// One registered business phone number.
#[derive(Debug, Clone, Deserialize)]
pub struct BusinessNumber {
    /// Meta's phone number id (digits).
    pub phone_number_id: String,
    /// What the connector uses it for.
    pub purposes: Vec<Purpose>,
    /// The campaign content sent to this number is tagged with (UGC numbers).
    #[serde(default)]
    pub campaign: Option<String>,
}

/// What a business number is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Outbound alerts and review requests (flows 1, 3, 4, 7).
    Notifications,
    /// Field teams' media (flow 2).
    FieldIngest,
    /// Sales and support sharing (flow 5).
    Sharing,
    /// Customer and ambassador submissions (flow 6).
    UgcIntake,
}

/// The template uses the flows need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateUse {
    /// Flow 1.
    ReviewRequest,
    /// Flow 2 and 6 receipts outside the service window.
    Receipt,
    /// Flow 3.
    RightsExpiry,
    /// Flow 4.
    CampaignRollout,
    /// Flow 5.
    AssetShare,
    /// Flow 7.
    IssueAlert,
}

/// An approved template.
#[derive(Debug, Clone, Deserialize)]
pub struct TemplateRef {
    /// Template name as approved in WhatsApp Manager.
    pub name: String,
    /// Language code (`en`, `en_US`): the default, sent when the recipient's language is not
    /// among `languages`.
    pub language: String,
    /// Every language the template is approved in (default: just `language`).
    #[serde(default)]
    pub languages: Vec<String>,
}

impl TemplateRef {
    /// Whether the template is approved in `language`.
    pub fn has_language(&self, language: &str) -> bool {
        self.language == language || self.languages.iter().any(|l| l == language)
    }
}

/// DAM field names and values of this Orange Logic instance.
#[derive(Debug, Clone, Deserialize)]
pub struct DamSettings {
    /// Each concept the connector uses, mapped to the instance's field name.
    pub field_map: BTreeMap<DamConcept, String>,
    /// The status values that drive the flows.
    pub status_values: StatusValues,
    /// Fields an asset must have filled before review (flow 7 alerts otherwise).
    #[serde(default)]
    pub required_fields: Vec<String>,
    /// Brand-compliance values that mean "not compliant" (compared case-insensitively).
    #[serde(default = "default_non_compliant")]
    pub brand_non_compliant_values: Vec<String>,
    /// The field holding the document subtype (campaign packages are recognised by it).
    #[serde(default = "default_doc_subtype_field")]
    pub doc_subtype_field: String,
    /// Subtypes that are campaign packages: approving one starts the campaign rollout (flow 4).
    #[serde(default)]
    pub campaign_package_subtypes: Vec<String>,
    /// The edit-date field the poll of recently edited assets searches on.
    #[serde(default = "default_edit_date_field")]
    pub edit_date_field: String,
    /// The field holding an asset's current file version (unconfirmed on real instances; see
    /// docs/orange-logic.md). Read with every asset so flows can tell which version was reviewed.
    #[serde(default = "default_version_field")]
    pub version_field: String,
    /// How this instance writes and expects dates.
    #[serde(default)]
    pub dates: DamDates,
    /// Which DataTable resource and record key reads and updates use, per subtype.
    #[serde(default)]
    pub datatable: DataTableSettings,
    /// How folder paths of the routing rules are resolved to folder record ids.
    #[serde(default)]
    pub folders: FolderSettings,
    /// Search paging and the poll's sort.
    #[serde(default)]
    pub search: SearchSettings,
    /// The poll of deleted objects.
    #[serde(default)]
    pub deletions: DeletionSettings,
    /// Fields ingested media (flows 2 and 6) are described with.
    #[serde(default)]
    pub ingest_fields: IngestFields,
}

/// The fields an ingested file's metadata goes to (the instance's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IngestFields {
    /// The contributor's name from the directory.
    pub contributor: String,
    /// The sender's pseudonym (never the number).
    pub sender: String,
    /// The caption.
    pub caption: String,
    /// `lat,lon`.
    pub location: String,
    /// When WhatsApp received it (ISO 8601, UTC).
    pub received_at: String,
    /// The wamid (also how a retry finds an upload whose answer was lost).
    pub message_id: String,
    /// The document's original file name, sanitised.
    pub original_file_name: String,
}

impl Default for IngestFields {
    fn default() -> Self {
        Self {
            contributor: "Custom.Contributor".into(),
            sender: "Custom.SenderPseudonym".into(),
            caption: "CoreField.Description".into(),
            location: "Custom.Location".into(),
            received_at: "Custom.ReceivedAt".into(),
            message_id: "Custom.WhatsAppMessageId".into(),
            original_file_name: "Custom.OriginalFileName".into(),
        }
    }
}

fn default_version_field() -> String {
    "CoreField.Version".into()
}

/// Dates as the instance writes them and as its search syntax expects them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DamDates {
    /// IANA name of the instance's time zone (dates without an offset are local to it).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// strftime patterns dates may come in, besides ISO 8601 (always accepted), e.g. the US display
    /// format `%m/%d/%Y %I:%M:%S %p` (`11/22/2019 10:23:19 AM`).
    #[serde(default = "default_date_formats")]
    pub formats: Vec<String>,
    /// strftime pattern of dates written into search criteria (documented: `YYYY-MM-DDTHH.MM.SS`).
    #[serde(default = "default_search_date_format")]
    pub search_format: String,
}

impl Default for DamDates {
    fn default() -> Self {
        Self {
            time_zone: default_time_zone(),
            formats: default_date_formats(),
            search_format: default_search_date_format(),
        }
    }
}

fn default_time_zone() -> String {
    "UTC".into()
}

fn default_date_formats() -> Vec<String> {
    vec!["%m/%d/%Y %I:%M:%S %p".into(), "%Y-%m-%d".into()]
}

fn default_search_date_format() -> String {
    "%Y-%m-%dT%H.%M.%S".into()
}

/// A DataTable resource and the field that identifies a record in it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataTableRoute {
    /// E.g. `Documents.All`, `Documents.Image.Default`.
    pub resource: String,
    /// E.g. `RecordID`, `CoreField.Identifier`.
    pub key: String,
}

/// Read and update routes; a subtype may override either.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataTableSettings {
    /// Reads (default `Documents.All` by `RecordID`, as working clients read any type).
    #[serde(default = "default_read_route")]
    pub read: DataTableRoute,
    /// Updates (default `Documents.Image.Default` by `CoreField.Identifier`, the documented shape).
    #[serde(default = "default_update_route")]
    pub update: DataTableRoute,
    /// Overrides by the value of `doc_subtype_field`.
    #[serde(default)]
    pub subtypes: BTreeMap<String, SubtypeRoutes>,
}

impl Default for DataTableSettings {
    fn default() -> Self {
        Self {
            read: default_read_route(),
            update: default_update_route(),
            subtypes: BTreeMap::new(),
        }
    }
}

fn default_read_route() -> DataTableRoute {
    DataTableRoute {
        resource: "Documents.All".into(),
        key: "RecordID".into(),
    }
}

fn default_update_route() -> DataTableRoute {
    DataTableRoute {
        resource: "Documents.Image.Default".into(),
        key: "CoreField.Identifier".into(),
    }
}

/// A subtype's own routes; what is absent falls back to the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct SubtypeRoutes {
    /// Read route of assets of this subtype.
    #[serde(default)]
    pub read: Option<DataTableRoute>,
    /// Update route of assets of this subtype.
    #[serde(default)]
    pub update: Option<DataTableRoute>,
}

/// Folder paths (`Projects/Bridge/Field`) → folder record ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FolderSettings {
    /// DataTable resource of folders (default `Documents.Folder.Default`).
    #[serde(default = "default_folder_resource")]
    pub resource: String,
    /// RecordID of the folder paths start from; none: the first segment is a folder title that
    /// must be unique on the instance.
    #[serde(default)]
    pub root: Option<String>,
    /// Create the missing folders of a path (default: no, an unknown folder is a configuration error).
    #[serde(default)]
    pub create_missing: bool,
}

impl Default for FolderSettings {
    fn default() -> Self {
        Self {
            resource: default_folder_resource(),
            root: None,
            create_missing: false,
        }
    }
}

fn default_folder_resource() -> String {
    "Documents.Folder.Default".into()
}

/// Search paging.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SearchSettings {
    /// Most pages one search reads before it stops with a logged reason (default 200, i.e. 20,000 items).
    #[serde(default = "default_page_cap")]
    pub page_cap: u32,
    /// `sort` of the poll (default `<edit_date_field> asc`, oldest first).
    #[serde(default)]
    pub poll_sort: Option<String>,
}

impl Default for SearchSettings {
    fn default() -> Self {
        Self {
            page_cap: default_page_cap(),
            poll_sort: None,
        }
    }
}

fn default_page_cap() -> u32 {
    200
}

/// `getdeletedobjects_45C_v1` (path from working code; parameters and answer unconfirmed).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeletionSettings {
    /// Poll deleted objects with each poll of edited assets (default yes).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The parameter carrying "deleted since" (default `StartDate`).
    #[serde(default = "default_deleted_since_parameter")]
    pub since_parameter: String,
    /// strftime pattern of that parameter's value (default ISO `%Y-%m-%dT%H:%M:%S`, as documented
    /// for the object-management APIs).
    #[serde(default = "default_deleted_since_format")]
    pub since_format: String,
}

impl Default for DeletionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            since_parameter: default_deleted_since_parameter(),
            since_format: default_deleted_since_format(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_deleted_since_parameter() -> String {
    "StartDate".into()
}

fn default_deleted_since_format() -> String {
    "%Y-%m-%dT%H:%M:%S".into()
}

fn default_non_compliant() -> Vec<String> {
    ["no", "false", "non-compliant"].map(String::from).to_vec()
}

fn default_doc_subtype_field() -> String {
    "CoreField.DocSubType".into()
}

fn default_edit_date_field() -> String {
    "CoreField.EditDate".into()
}

/// A DAM concept the connector reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DamConcept {
    /// Workflow status.
    Status,
    /// Owner's WhatsApp-linked identity.
    Owner,
    /// Approvers.
    Approvers,
    /// Campaign.
    Campaign,
    /// Usage rights summary.
    UsageRights,
    /// Rights expiry date.
    ExpiryDate,
    /// Licence end date.
    LicenceEnd,
    /// Project tag.
    ProjectTag,
    /// Region.
    Region,
    /// Brand-compliance flag.
    BrandCompliance,
    /// Append-only comment log.
    Comments,
    /// Review deadline.
    ReviewDeadline,
}

impl DamConcept {
    /// Every concept; the field map must name each one.
    pub const ALL: [Self; 12] = [
        Self::Status,
        Self::Owner,
        Self::Approvers,
        Self::Campaign,
        Self::UsageRights,
        Self::ExpiryDate,
        Self::LicenceEnd,
        Self::ProjectTag,
        Self::Region,
        Self::BrandCompliance,
        Self::Comments,
        Self::ReviewDeadline,
    ];
}

/// Status values as this instance spells them.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusValues {
    /// Flow 1 trigger.
    pub ready_for_review: String,
    /// Approved.
    pub approved: String,
    /// Flow 7 trigger.
    pub rejected: String,
    /// Flow 7 trigger.
    #[serde(default)]
    pub blocked: Option<String>,
}

/// Routing of incoming content.
#[derive(Debug, Clone, Deserialize)]
pub struct Routing {
    /// Field media (flow 2).
    pub field_ingest: FieldIngestRouting,
    /// UGC (flow 6).
    pub ugc: UgcRouting,
}

/// Where field media lands.
#[derive(Debug, Clone, Deserialize)]
pub struct FieldIngestRouting {
    /// Folder for media whose project tag matches no rule.
    pub default_folder: String,
    /// First match wins.
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
    /// File types accepted from the field, as sniffed from the bytes (default:
    /// `domain::field_ingest::DEFAULT_ALLOWED_TYPES`).
    #[serde(default = "default_allowed_types")]
    pub allowed_types: Vec<String>,
    /// Largest file accepted, MB (default 100, what WhatsApp lets users send).
    #[serde(default = "default_max_file_mb")]
    pub max_file_mb: u64,
}

fn default_allowed_types() -> Vec<String> {
    crate::domain::field_ingest::DEFAULT_ALLOWED_TYPES
        .map(String::from)
        .to_vec()
}

fn default_max_file_mb() -> u64 {
    100
}

/// One routing rule.
#[derive(Debug, Clone, Deserialize)]
pub struct RoutingRule {
    /// Project tag pattern; a trailing `*` matches any suffix.
    pub project_tag: String,
    /// Target folder.
    pub folder: String,
    /// Optional DAM workflow to start.
    #[serde(default)]
    pub workflow: Option<String>,
}

/// Where UGC lands, the terms contributors agree to, and how a submission's campaign is found.
#[derive(Debug, Clone, Deserialize)]
pub struct UgcRouting {
    /// Moderation folder.
    pub moderation_folder: String,
    /// The terms a contributor agrees to, linked in the consent question.
    #[serde(default)]
    pub terms_url: String,
    /// Their version, recorded with each consent.
    #[serde(default)]
    pub terms_version: String,
    /// A word of the caption or text (any case, `#` allowed) → the campaign it names.
    #[serde(default)]
    pub keywords: BTreeMap<String, String>,
    /// A click-to-WhatsApp ad or post (`referral.source_id`) → its campaign.
    #[serde(default)]
    pub referral_campaigns: BTreeMap<String, String>,
    /// The DAM field that says where a submission came from (default `Custom.UgcSource`).
    #[serde(default = "default_ugc_source_field")]
    pub source_field: String,
    /// The DAM field holding the consent record (default `Custom.UgcConsent`).
    #[serde(default = "default_ugc_consent_field")]
    pub consent_field: String,
    /// The usage-rights value of a new submission (default `Pending clearance`).
    #[serde(default = "default_ugc_rights_pending")]
    pub rights_pending: String,
}

fn default_ugc_source_field() -> String {
    "Custom.UgcSource".into()
}

fn default_ugc_consent_field() -> String {
    "Custom.UgcConsent".into()
}

fn default_ugc_rights_pending() -> String {
    "Pending clearance".into()
}

/// Rights-expiry alerting.
#[derive(Debug, Clone, Deserialize)]
pub struct Alerts {
    /// Days before expiry at which owners and legal hear about it, e.g. `[30, 7, 1]`.
    pub expiry_windows_days: Vec<u32>,
    /// The status "remove from use" sets on an expiring asset; none: the action is not offered.
    #[serde(default)]
    pub withdrawn_status: Option<String>,
    /// Asset links in alerts: this prefix followed by the RecordID; none: the instance's base URL
    /// followed by `/AssetLink/` (unverified: set what your instance's asset pages use).
    #[serde(default)]
    pub asset_link_prefix: Option<String>,
}

/// A document that cannot be used, with every problem named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorConfigError {
    /// The source could not be read.
    #[error("cannot read the connector configuration")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The document does not parse; `key` is the path to the bad value.
    #[error("connector configuration: `{key}`: {problem}")]
    Syntax { key: String, problem: String },
    /// The document parses but breaks rules.
    #[error("connector configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<ConfigIssue>),
}

/// One rule broken at one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted path, e.g. `routing.field_ingest.rules[1].folder`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.problem)
    }
}

impl ConnectorConfig {
    /// Parses YAML (JSON is YAML too) and validates.
    pub fn parse(text: &str) -> Result<Self, ConnectorConfigError> {
        let deserializer = serde_norway::Deserializer::from_str(text);
        let (config, unknown): (Self, _) = crate::config::tolerant(deserializer).map_err(|e| {
            let key = e.path().to_string();
            ConnectorConfigError::Syntax {
                key,
                problem: e.into_inner().to_string(),
            }
        })?;
        crate::config::warn_unknown_keys("connector configuration", &unknown);
        let issues = config.issues();
        if issues.is_empty() {
            Ok(config)
        } else {
            Err(ConnectorConfigError::Invalid(issues))
        }
    }

    /// The business number configured for `purpose`, if any.
    pub fn number_for(&self, purpose: Purpose) -> Option<&BusinessNumber> {
        self.whatsapp
            .business_numbers
            .iter()
            .find(|n| n.purposes.contains(&purpose))
    }

    fn issues(&self) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        let mut issue = |key: String, problem: &str| {
            issues.push(ConfigIssue {
                key,
                problem: problem.to_owned(),
            })
        };

        if self.whatsapp.business_numbers.is_empty() {
            issue(
                "whatsapp.business_numbers".into(),
                "must list at least one number",
            );
        }
        let mut seen = HashSet::new();
        for (i, number) in self.whatsapp.business_numbers.iter().enumerate() {
            let key = format!("whatsapp.business_numbers[{i}]");
            if number.phone_number_id.is_empty()
                || !number.phone_number_id.bytes().all(|b| b.is_ascii_digit())
            {
                issue(
                    format!("{key}.phone_number_id"),
                    "must be Meta's numeric phone number id",
                );
            }
            if !seen.insert(&number.phone_number_id) {
                issue(format!("{key}.phone_number_id"), "is listed twice");
            }
            if number.purposes.is_empty() {
                issue(format!("{key}.purposes"), "must name at least one purpose");
            }
            if number.purposes.contains(&Purpose::UgcIntake)
                && number.campaign.as_deref().is_none_or(str::is_empty)
            {
                issue(
                    format!("{key}.campaign"),
                    "is required for a ugc_intake number",
                );
            }
        }
        for (usage, template) in &self.whatsapp.templates {
            let key = format!("whatsapp.templates.{}", snake(usage));
            let valid_name = !template.name.is_empty()
                && template
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                issue(
                    format!("{key}.name"),
                    "must be lowercase letters, digits and underscores",
                );
            }
            let valid_language = |language: &str| {
                matches!(language.len(), 2 | 3 | 5 | 6)
                    && language
                        .bytes()
                        .all(|b| b.is_ascii_alphabetic() || b == b'_')
            };
            if !valid_language(&template.language) {
                issue(
                    format!("{key}.language"),
                    "must be a WhatsApp language code such as en or en_US",
                );
            }
            for (i, language) in template.languages.iter().enumerate() {
                if !valid_language(language) {
                    issue(
                        format!("{key}.languages[{i}]"),
                        "must be a WhatsApp language code such as en or en_US",
                    );
                }
            }
        }
        for concept in DamConcept::ALL {
            match self.dam.field_map.get(&concept) {
                None => issue(format!("dam.field_map.{}", snake(&concept)), "is missing"),
                Some(field) if field.trim().is_empty() => {
                    issue(format!("dam.field_map.{}", snake(&concept)), "is empty")
                }
                Some(_) => {}
            }
        }
        let statuses = &self.dam.status_values;
        for (name, value) in [
            ("ready_for_review", &statuses.ready_for_review),
            ("approved", &statuses.approved),
            ("rejected", &statuses.rejected),
        ] {
            if value.trim().is_empty() {
                issue(format!("dam.status_values.{name}"), "is empty");
            }
        }
        if jiff::tz::TimeZone::get(&self.dam.dates.time_zone).is_err() {
            issue(
                "dam.dates.time_zone".into(),
                "is not a known IANA time zone name (e.g. UTC, America/New_York)",
            );
        }
        if let Some(contact) = &self.issue_alerts.fallback_contact
            && crate::domain::contact::WhatsAppAddress::parse(contact).is_err()
        {
            issue(
                "issue_alerts.fallback_contact".into(),
                "must be a WhatsApp number in E.164 or a business-scoped user id",
            );
        }
        if self.dam.search.page_cap == 0 {
            issue("dam.search.page_cap".into(), "must be at least 1");
        }
        let routes = std::iter::once(("dam.datatable.read".to_owned(), &self.dam.datatable.read))
            .chain(std::iter::once((
                "dam.datatable.update".to_owned(),
                &self.dam.datatable.update,
            )))
            .chain(self.dam.datatable.subtypes.iter().flat_map(|(subtype, r)| {
                [("read", &r.read), ("update", &r.update)]
                    .into_iter()
                    .filter_map(move |(verb, route)| {
                        route.as_ref().map(|route| {
                            (format!("dam.datatable.subtypes.{subtype}.{verb}"), route)
                        })
                    })
            }));
        for (key, route) in routes {
            if !route.resource.starts_with("Documents") || route.resource.contains(':') {
                issue(
                    format!("{key}.resource"),
                    "must be a DataTable resource such as Documents.Image.Default, without the verb",
                );
            }
            if route.key.trim().is_empty() {
                issue(format!("{key}.key"), "is empty");
            }
        }
        if self.routing.field_ingest.default_folder.trim().is_empty() {
            issue("routing.field_ingest.default_folder".into(), "is empty");
        }
        for (i, rule) in self.routing.field_ingest.rules.iter().enumerate() {
            let key = format!("routing.field_ingest.rules[{i}]");
            let pattern = rule
                .project_tag
                .strip_suffix('*')
                .unwrap_or(&rule.project_tag);
            if rule.project_tag.is_empty() || pattern.contains('*') {
                issue(
                    format!("{key}.project_tag"),
                    "must be a tag, optionally ending in one *",
                );
            }
            if rule.folder.trim().is_empty() {
                issue(format!("{key}.folder"), "is empty");
            }
        }
        if self.routing.ugc.moderation_folder.trim().is_empty() {
            issue("routing.ugc.moderation_folder".into(), "is empty");
        }
        let takes_ugc = self
            .whatsapp
            .business_numbers
            .iter()
            .any(|n| n.purposes.contains(&Purpose::UgcIntake));
        if takes_ugc {
            let ugc = &self.routing.ugc;
            if !(ugc.terms_url.starts_with("https://") || ugc.terms_url.starts_with("http://")) {
                issue(
                    "routing.ugc.terms_url".into(),
                    "must be the terms' http(s) address (a ugc_intake number asks for consent to them)",
                );
            }
            if ugc.terms_version.trim().is_empty() {
                issue("routing.ugc.terms_version".into(), "is empty");
            }
        }
        let windows = &self.alerts.expiry_windows_days;
        if windows.is_empty() || windows.contains(&0) {
            issue(
                "alerts.expiry_windows_days".into(),
                "must list whole days greater than zero",
            );
        }
        if windows.iter().collect::<HashSet<_>>().len() != windows.len() {
            issue("alerts.expiry_windows_days".into(), "lists a window twice");
        }
        issues
    }
}

/// The name a unit enum variant has in the document.
fn snake<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Where the document lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectorConfigLocation {
    /// An SSM Parameter Store parameter, in AWS.
    SsmParameter(String),
    /// A file, in the local stack.
    File(PathBuf),
}

impl ConnectorConfigLocation {
    /// Reads `CONNECTOR_CONFIG_PARAMETER`, else `CONNECTOR_CONFIG_FILE`.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &mut crate::config::Env<F>) -> Self {
        if let Some(name) = env.optional("CONNECTOR_CONFIG_PARAMETER") {
            Self::SsmParameter(name)
        } else if let Some(path) = env.optional("CONNECTOR_CONFIG_FILE") {
            Self::File(path.into())
        } else {
            env.required("CONNECTOR_CONFIG_PARAMETER or CONNECTOR_CONFIG_FILE");
            Self::File(PathBuf::new())
        }
    }

    /// Fetches and validates the document; called once per cold start.
    pub async fn load(
        &self,
        aws: &aws_config::SdkConfig,
    ) -> Result<ConnectorConfig, ConnectorConfigError> {
        let text = match self {
            Self::File(path) => std::fs::read_to_string(path)
                .map_err(|e| ConnectorConfigError::Read(Box::new(e)))?,
            Self::SsmParameter(name) => aws_sdk_ssm::Client::new(aws)
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| ConnectorConfigError::Read(Box::new(e)))?
                .parameter
                .and_then(|p| p.value)
                .ok_or_else(|| ConnectorConfigError::Read("the parameter has no value".into()))?,
        };
        ConnectorConfig::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../local/connector.yaml");

    #[test]
    fn the_local_sample_is_valid() {
        let config = ConnectorConfig::parse(SAMPLE).expect("the shipped sample validates");
        assert!(config.number_for(Purpose::FieldIngest).is_some());
        assert_eq!(config.alerts.expiry_windows_days, [30, 7, 1]);
    }

    #[test]
    fn a_misspelt_required_key_names_the_missing_one() {
        let text = SAMPLE.replace("moderation_folder:", "moderaton_folder:");
        let err = ConnectorConfig::parse(&text).expect_err("typo").to_string();
        assert!(
            err.contains("routing.ugc") && err.contains("moderation_folder"),
            "{err}"
        );
    }

    #[test]
    fn a_key_this_version_does_not_know_is_ignored() {
        let text = SAMPLE.replacen("dam:\n", "dam:\n  added_in_a_later_version: true\n", 1);
        assert_ne!(text, SAMPLE, "the sample has a `dam:` section");
        let deserializer = serde_norway::Deserializer::from_str(&text);
        let (_, unknown): (ConnectorConfig, _) =
            crate::config::tolerant(deserializer).expect("tolerated");
        assert_eq!(unknown, ["dam.added_in_a_later_version"]);
        assert!(ConnectorConfig::parse(&text).is_ok());
    }

    #[test]
    fn a_wrong_type_names_its_key() {
        let text = SAMPLE.replace(
            "expiry_windows_days: [30, 7, 1]",
            "expiry_windows_days: [30, soon]",
        );
        let err = ConnectorConfig::parse(&text).expect_err("type").to_string();
        assert!(err.contains("alerts.expiry_windows_days[1]"), "{err}");
    }

    #[test]
    fn dam_api_settings_have_documented_defaults() {
        let config = ConnectorConfig::parse(SAMPLE).expect("sample");
        let dam = &config.dam;
        assert_eq!(dam.dates.search_format, "%Y-%m-%dT%H.%M.%S");
        assert_eq!(dam.datatable.read.resource, "Documents.All");
        assert_eq!(dam.datatable.read.key, "RecordID");
        assert_eq!(dam.datatable.update.key, "CoreField.Identifier");
        assert_eq!(dam.folders.resource, "Documents.Folder.Default");
        assert!(!dam.folders.create_missing);
        assert_eq!(dam.search.page_cap, 200);
    }

    #[test]
    fn an_unknown_time_zone_and_a_resource_with_a_verb_are_named() {
        let text = SAMPLE
            .replace("time_zone: UTC", "time_zone: Mars/Olympus")
            .replace(
                "update: { resource: Documents.Image.Default,",
                "update: { resource: \"Documents.All:Update\",",
            );
        let ConnectorConfigError::Invalid(issues) =
            ConnectorConfig::parse(&text).expect_err("invalid")
        else {
            panic!("expected validation issues");
        };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert!(keys.contains(&"dam.dates.time_zone"), "{keys:?}");
        assert!(keys.contains(&"dam.datatable.update.resource"), "{keys:?}");
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_key() {
        let text = SAMPLE
            .replace(
                "expiry_windows_days: [30, 7, 1]",
                "expiry_windows_days: [30, 0]",
            )
            .replace("    project_tag: CoreField.ProjectTag\n", "");
        let ConnectorConfigError::Invalid(issues) =
            ConnectorConfig::parse(&text).expect_err("invalid")
        else {
            panic!("expected validation issues");
        };
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert!(keys.contains(&"dam.field_map.project_tag"), "{keys:?}");
        assert!(keys.contains(&"alerts.expiry_windows_days"), "{keys:?}");
    }
}
