//! The record factory: builds audit records with the real shapes of docs/management-api.md
//! (Entra sign-ins, Exchange admin cmdlets and mailbox items, OME portal, SharePoint and
//! OneDrive file and sharing operations, Teams, Security & Compliance, DLP) and the quirks
//! listed there (numbers as strings, Parameters as a string, ClientIP with ports/brackets/`"<null>"`,
//! CreationTime without zone). Background records are drawn from a seeded mix per content
//! type; the planted attack stories (`stories/`) use the same builders with fixed values.
//! Pure functions of their input; no clock, no I/O.

use super::json::{Obj, esc_into, js, nv, raw_array, str_array};
use super::rng::Rng;
use super::tenant::{Tenant, UAS, User};
use crate::model::{ContentType, format_record_time};
use chrono::{DateTime, Duration, Utc};

/// What every record builder needs first: the tenant it belongs to, the random stream
/// it draws from, its `CreationTime` and its `Id`.
pub(crate) struct Gen<'a> {
    pub(crate) t: &'a Tenant,
    pub(crate) r: &'a mut Rng,
    pub(crate) time: DateTime<Utc>,
    pub(crate) id: &'a str,
}

pub const APP_EXO: &str = "00000002-0000-0ff1-ce00-000000000000";
pub const APP_OFFICE: &str = "d3590ed6-52b3-4102-aeff-aad2292ab01c";
pub const APP_TEAMS: &str = "1fec8e78-bce4-4aaf-ab1b-5451cc387264";
pub const APP_OFFICEHOME: &str = "4765445b-32c6-49b0-83e6-1d93765276ca";
pub const APP_BROKER: &str = "29d9ed98-a469-4536-ade2-f981bc1d605e";

/// `YYYY-MM-DDTHH:MM:SS` (no zone), as records carry CreationTime; the same text as
/// `model::format_record_time`, without chrono's format parser on the hot path.
pub(crate) fn rec_time(t: DateTime<Utc>) -> String {
    use chrono::{Datelike as _, Timelike as _};
    use std::fmt::Write as _;
    let mut s = String::with_capacity(19);
    let _ = write!(
        s,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    s
}

/// The common fields every record starts with, in Microsoft's order.
pub(crate) struct Base<'a> {
    pub time: DateTime<Utc>,
    pub id: &'a str,
    pub op: &'a str,
    pub rt: i64,
    pub rt_as_string: bool,
    pub result: Option<&'a str>,
    pub user_key: &'a str,
    pub user_type: i64,
    pub workload: &'a str,
    pub client_ip: Option<&'a str>,
    pub object_id: Option<&'a str>,
    pub user_id: &'a str,
}

pub(crate) fn base(t: &Tenant, b: &Base) -> Obj {
    let mut o = Obj::new();
    o.s("CreationTime", &rec_time(b.time))
        .s("Id", b.id)
        .s("Operation", b.op)
        .s("OrganizationId", &t.id);
    if b.rt_as_string {
        o.s("RecordType", &b.rt.to_string());
    } else {
        o.n("RecordType", b.rt);
    }
    if let Some(r) = b.result {
        o.s("ResultStatus", r);
    }
    o.s("UserKey", b.user_key)
        .n("UserType", b.user_type)
        .n("Version", 1)
        .s("Workload", b.workload);
    if let Some(ip) = b.client_ip {
        o.s("ClientIP", ip);
    }
    if let Some(obj) = b.object_id {
        o.s("ObjectId", obj);
    }
    o.s("UserId", b.user_id);
    o
}

/// A ClientIP in one of the real-world shapes of docs/management-api.md (Record quirks).
pub(crate) fn ip_shape(r: &mut Rng, u: &User) -> String {
    match r.weighted(&[70, 8, 4, 3, 8, 4, 2, 1]) {
        0 => u.office_ip.clone(),
        1 => format!("{}:{}", u.home_ip, r.range(1025, 65000)),
        2 => format!("[{}]:{}", u.office_ip, r.range(1025, 65000)),
        3 => format!("::ffff:{}", u.home_ip),
        4 => u.v6.clone(),
        5 => format!("[{}]:{}", u.v6, r.range(1025, 65000)),
        6 => "<null>".to_string(),
        _ => String::new(),
    }
}

pub(crate) struct SignIn<'a> {
    pub user_id: &'a str,
    pub user_key: &'a str,
    pub user_type: i64,
    pub failed: bool,
    pub result_status: &'a str,
    pub ip: &'a str,
    pub ua: &'a str,
    pub request_type: &'a str,
    pub detail: &'a str,
    pub error: Option<(&'a str, &'a str)>,
    pub app_id: &'a str,
    pub rt_as_string: bool,
}

/// UserLoggedIn / UserLoginFailed (RecordType 15).
pub(crate) fn signin(t: &Tenant, r: &mut Rng, time: DateTime<Utc>, id: &str, s: &SignIn) -> String {
    let op = if s.failed {
        "UserLoginFailed"
    } else {
        "UserLoggedIn"
    };
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt: 15,
            rt_as_string: s.rt_as_string,
            result: Some(s.result_status),
            user_key: s.user_key,
            user_type: s.user_type,
            workload: "AzureActiveDirectory",
            client_ip: Some(s.ip),
            object_id: Some(s.app_id),
            user_id: s.user_id,
        },
    );
    o.n("AzureActiveDirectoryEventType", 1).raw(
        "ExtendedProperties",
        &nv(&[
            ("ResultStatusDetail", s.detail),
            ("UserAgent", s.ua),
            ("RequestType", s.request_type),
        ]),
    );
    o.raw("ModifiedProperties", "[]");
    let actor = format!(
        "[{{\"ID\":{},\"Type\":0}},{{\"ID\":{},\"Type\":5}}]",
        js(s.user_key),
        js(s.user_id)
    );
    o.raw("Actor", &actor)
        .s("ActorContextId", &t.id)
        .s("ActorIpAddress", s.ip)
        .g("InterSystemsId", r)
        .g("IntraSystemId", r)
        .s("SupportTicketId", "")
        .raw(
            "Target",
            &format!("[{{\"ID\":{},\"Type\":0}}]", js(s.app_id)),
        )
        .s("TargetContextId", &t.id)
        .s("ApplicationId", s.app_id)
        .raw(
            "DeviceProperties",
            &nv(&[
                (
                    "OS",
                    if s.ua.contains("iPhone") {
                        "Ios"
                    } else {
                        "Windows10"
                    },
                ),
                ("BrowserType", "Edge"),
                ("SessionId", &r.guid()),
            ]),
        );
    match s.error {
        Some((num, logon)) => {
            o.s("ErrorNumber", num).s("LogonError", logon);
        }
        None => {
            o.s("ErrorNumber", "0");
        }
    }
    o.done()
}

/// A directory audit event (RecordType 8), e.g. "Update user." with ModifiedProperties
/// whose values are JSON strings.
pub(crate) fn aad_directory(
    g: Gen<'_>,
    op: &str,
    actor: &User,
    target: &str,
    modified: &[(&str, &str, &str)],
    extra: &[(&str, &str)],
) -> String {
    let Gen { t, r, time, id } = g;
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt: 8,
            rt_as_string: false,
            result: Some("Success"),
            user_key: &format!("{}@{}", actor.puid, t.domain),
            user_type: 0,
            workload: "AzureActiveDirectory",
            client_ip: None,
            object_id: Some(target),
            user_id: &actor.upn,
        },
    );
    let mods: Vec<String> = modified
        .iter()
        .map(|(n, old, new)| {
            format!(
                "{{\"Name\":{},\"NewValue\":{},\"OldValue\":{}}}",
                js(n),
                js(new),
                js(old)
            )
        })
        .collect();
    o.n("AzureActiveDirectoryEventType", 1)
        .raw("ExtendedProperties", &nv(&[("additionalDetails", "{}"), ("extendedAuditEventCategory", "User")]))
        .raw("ModifiedProperties", &raw_array(&mods))
        .raw(
            "Actor",
            &format!(
                "[{{\"ID\":{},\"Type\":5}},{{\"ID\":{},\"Type\":3}},{{\"ID\":\"User_{}\",\"Type\":2}}]",
                js(&actor.upn),
                js(&actor.puid),
                actor.oid
            ),
        )
        .s("ActorContextId", &t.id)
        .g("InterSystemsId", r)
        .g("IntraSystemId", r)
        .s("SupportTicketId", "")
        .raw("Target", &format!("[{{\"ID\":{},\"Type\":5}}]", js(target)))
        .s("TargetContextId", &t.id);
    for (k, v) in extra {
        o.s(k, v);
    }
    o.done()
}

pub(crate) struct ExAdmin<'a> {
    pub cmdlet: &'a str,
    pub user: &'a str,
    pub user_key: &'a str,
    pub user_type: i64,
    pub object_id: &'a str,
    pub params: &'a [(&'a str, &'a str)],
    pub params_as_string: bool,
    pub ip: &'a str,
    pub result: &'a str,
}

/// An Exchange admin cmdlet (RecordType 1): `Parameters` as `[{Name,Value}]` (or, as real
/// data sometimes has it, one string).
pub(crate) fn exchange_admin(
    t: &Tenant,
    r: &mut Rng,
    time: DateTime<Utc>,
    id: &str,
    a: &ExAdmin,
) -> String {
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: a.cmdlet,
            rt: 1,
            rt_as_string: false,
            result: Some(a.result),
            user_key: a.user_key,
            user_type: a.user_type,
            workload: "Exchange",
            client_ip: Some(a.ip),
            object_id: Some(a.object_id),
            user_id: a.user,
        },
    );
    o.s("AppId", "")
        .s("ClientAppId", "")
        .b("ExternalAccess", a.user_type == 4)
        .s("OrganizationName", &t.onms)
        .s(
            "OriginatingServer",
            &format!(
                "AM6PR{:02}MB{:04} (15.20.{}.000)\r\n",
                r.below(10),
                r.below(9999),
                7000 + r.below(900)
            ),
        );
    if a.params_as_string {
        let s: Vec<String> = a
            .params
            .iter()
            .map(|(n, v)| format!("-{n} \"{v}\""))
            .collect();
        o.s("Parameters", &s.join(" "));
    } else {
        o.raw("Parameters", &nv(a.params));
    }
    o.done()
}

/// A Security & Compliance PowerShell cmdlet (RecordType 18, `Parameters` a string).
pub(crate) fn scc_cmdlet(
    g: Gen<'_>,
    cmdlet: &str,
    actor: &User,
    object_id: &str,
    params: &str,
    ip: &str,
) -> String {
    let Gen { t, r, time, id } = g;
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: cmdlet,
            rt: 18,
            rt_as_string: false,
            result: Some("True"),
            user_key: &actor.puid,
            user_type: 2,
            workload: "SecurityComplianceCenter",
            client_ip: Some(ip),
            object_id: Some(object_id),
            user_id: &actor.upn,
        },
    );
    o.n("SecurityComplianceCenterEventType", 0)
        .s(
            "StartTime",
            &format_record_time(time - Duration::seconds(2)),
        )
        .s("ClientApplication", "")
        .s("CmdletVersion", "")
        .s("EffectiveOrganization", &t.onms)
        .s("UserServicePlan", "")
        .g("ClientRequestId", r)
        .s("Parameters", params)
        .s("NonPiiParameters", "");
    o.done()
}

/// A Security & Compliance alert (RecordType 40) with `Data` as a JSON string; numbers as
/// strings as in the real fixtures.
pub(crate) fn scc_alert(
    g: Gen<'_>,
    op: &str,
    name: &str,
    severity: &str,
    category: &str,
    about: &str,
) -> String {
    let Gen { t, r, time, id } = g;
    let alert_id = r.guid();
    let data = format!(
        "{{\"etype\":\"User\",\"eid\":{},\"op\":\"{}\",\"tdc\":\"1\",\"ts\":\"{}\",\"wl\":\"Exchange\"}}",
        js(about),
        op,
        format_record_time(time)
    );
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt: 40,
            rt_as_string: true,
            result: Some("Succeeded"),
            user_key: "SecurityComplianceAlerts",
            user_type: 4,
            workload: "SecurityComplianceCenter",
            client_ip: None,
            object_id: Some(&alert_id),
            user_id: "SecurityComplianceAlerts",
        },
    );
    o.s("AlertId", &alert_id)
        .s("AlertType", "System")
        .s("Name", name)
        .g("PolicyId", r)
        .s("Status", "Active")
        .s("Severity", severity)
        .s("Category", category)
        .s("Source", "Office 365 Security & Compliance")
        .s("Comments", "New alert")
        .s("Data", &data)
        .s("AlertEntityId", about)
        .s("EntityType", "User");
    o.done()
}

/// The encrypted-message portal (RecordType 154, Workload Exchange).
pub(crate) fn ome(
    g: Gen<'_>,
    op: &str,
    sender: &str,
    recipient: &str,
    attachment: Option<&str>,
    subject: &str,
) -> String {
    let Gen { t, r, time, id } = g;
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt: 154,
            rt_as_string: false,
            result: Some("Success"),
            user_key: sender,
            user_type: 0,
            workload: "Exchange",
            client_ip: None,
            object_id: None,
            user_id: sender,
        },
    );
    if let Some(a) = attachment {
        o.s("AttachmentName", a);
    }
    o.s("AuthenticationMethod", "OTP")
        .n("AuthenticationStatus", 0)
        .s(
            "MessageId",
            &format!(
                "<MW5PR18MB{}{}@MW5PR18MB{}.namprd18.prod.outlook.com>",
                r.below(9999),
                r.hex_upper(4),
                r.below(9999)
            ),
        )
        .raw("OperationProperties", &nv(&[("MailSubject", subject)]))
        .n("OperationStatus", 0)
        .s("Recipient", recipient)
        .s("Sender", sender);
    o.done()
}

/// Mailbox item operations (RecordType 2/3): Send, Create (with `Item.Attachments`),
/// SoftDelete/HardDelete/MoveToDeletedItems (with `AffectedItems[].Subject`), Update.
pub(crate) fn mailbox_item(
    g: Gen<'_>,
    op: &str,
    u: &User,
    ip: &str,
    subject: &str,
    attachments: Option<&str>,
) -> String {
    let Gen { t, r, time, id } = g;
    let grouped = matches!(op, "SoftDelete" | "HardDelete" | "MoveToDeletedItems");
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt: if grouped { 3 } else { 2 },
            rt_as_string: false,
            result: Some("Succeeded"),
            user_key: &u.puid,
            user_type: 0,
            workload: "Exchange",
            client_ip: Some(ip),
            object_id: Some(&format!("{}\\{}", u.upn, r.hex_upper(8))),
            user_id: &u.upn,
        },
    );
    o.s("AppId", APP_OFFICE)
        .s("ClientAppId", "")
        .b("ExternalAccess", false)
        .s("InternalLogonType", "0")
        .n("LogonType", 0)
        .s(
            "LogonUserSid",
            &format!("S-1-5-21-{}-{}-{}", r.digits(9), r.digits(9), r.digits(4)),
        )
        .g("MailboxGuid", r)
        .s("MailboxOwnerSid", &format!("S-1-5-21-{}", r.digits(9)))
        .s("MailboxOwnerUPN", &u.upn)
        .s("OrganizationName", &t.onms)
        .s(
            "OriginatingServer",
            &format!(
                "DB{}PR{:02}MB{} (15.20.7000.000)\n",
                r.below(9),
                r.below(99),
                r.below(9999)
            ),
        )
        .s("ClientInfoString", "Client=OWA;Action=ViaProxy")
        .s("ClientIPAddress", ip);
    if grouped {
        o.raw(
            "AffectedItems",
            &format!(
                "[{{\"Id\":{},\"InternetMessageId\":\"<{}@{}>\",\"ParentFolder\":{{\"Id\":{},\"Path\":\"\\\\Inbox\"}},\"Subject\":{}}}]",
                js(&r.hex_upper(40)),
                r.hex_upper(12),
                t.domain,
                js(&r.hex_upper(40)),
                js(subject)
            ),
        )
        .raw("Folder", "{\"Id\":\"LgAAAAA\",\"Path\":\"\\\\Inbox\"}")
        .b("CrossMailboxOperation", false);
    } else {
        let mut item = String::from("{");
        item.push_str("\"Id\":");
        esc_into(&mut item, &r.hex_upper(40));
        item.push_str(
            ",\"ParentFolder\":{\"Id\":\"LgAAAAA\",\"Path\":\"\\\\Sent Items\"},\"Subject\":",
        );
        esc_into(&mut item, subject);
        if let Some(a) = attachments {
            item.push_str(",\"Attachments\":");
            esc_into(&mut item, a);
        }
        item.push('}');
        o.raw("Item", &item);
    }
    o.done()
}

/// MailItemsAccessed (RecordType 50), aggregated.
pub(crate) fn mail_items_accessed(
    g: Gen<'_>,
    u: &User,
    ip: &str,
    count: i64,
    throttled: bool,
    client_app: &str,
) -> String {
    let Gen { t, r, time, id } = g;
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: "MailItemsAccessed",
            rt: 50,
            rt_as_string: false,
            result: Some("Succeeded"),
            user_key: &u.puid,
            user_type: 0,
            workload: "Exchange",
            client_ip: Some(ip),
            object_id: None,
            user_id: &u.upn,
        },
    );
    o.s("AppId", client_app)
        .s("ClientAppId", client_app)
        .s("ClientIPAddress", ip)
        .s("ClientInfoString", "Client=REST;Client=RESTSystem;")
        .b("ExternalAccess", false)
        .s("InternalLogonType", "0")
        .n("LogonType", 0)
        .g("MailboxGuid", r)
        .s("MailboxOwnerUPN", &u.upn)
        .s("OrganizationName", &t.onms)
        .s("OperationCount", &count.to_string())
        .raw(
            "OperationProperties",
            &nv(&[("MailAccessType", "Bind"), ("IsThrottled", if throttled { "True" } else { "False" })]),
        )
        .raw(
            "Folders",
            &format!(
                "[{{\"FolderItems\":[{{\"InternetMessageId\":\"<{}@{}>\"}}],\"Id\":\"LgAAAAA\",\"Path\":\"\\\\Inbox\"}}]",
                r.hex_upper(16),
                t.domain
            ),
        );
    o.done()
}

pub(crate) struct SpFile<'a> {
    pub op: &'a str,
    pub rt: i64,
    pub workload: &'a str,
    pub user: &'a User,
    pub ip: &'a str,
    pub ua: &'a str,
    pub site_url: &'a str,
    pub folder: &'a str,
    pub file: &'a str,
    pub item_type: &'a str,
}

fn sp_common(t: &Tenant, r: &mut Rng, time: DateTime<Utc>, id: &str, f: &SpFile) -> Obj {
    let object_id = format!("{}/{}/{}", f.site_url, f.folder, f.file);
    let object_id = object_id.trim_end_matches('/').to_string();
    let key = format!(
        "i:0h.f|membership|{}@live.com",
        f.user.puid.to_ascii_lowercase()
    );
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: f.op,
            rt: f.rt,
            rt_as_string: false,
            result: None,
            user_key: &key,
            user_type: 0,
            workload: f.workload,
            client_ip: Some(f.ip),
            object_id: Some(&object_id),
            user_id: &f.user.upn,
        },
    );
    let ext = f.file.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    o.g("CorrelationId", r)
        .s("EventSource", "SharePoint")
        .s("ItemType", f.item_type)
        .g("ListId", r)
        .g("ListItemUniqueId", r)
        .g("Site", r)
        .s("UserAgent", f.ua)
        .g("WebId", r)
        .raw(
            "AppAccessContext",
            &format!(
                "{{\"AADSessionId\":{},\"CorrelationId\":{},\"UniqueTokenId\":{}}}",
                js(&r.guid()),
                js(&r.guid()),
                js(&r.hex_upper(22))
            ),
        );
    if f.item_type == "File" {
        o.s("SourceFileExtension", ext);
    }
    o.s("SiteUrl", &format!("{}/", f.site_url))
        .s("SourceFileName", f.file)
        .s("SourceRelativeUrl", f.folder);
    o
}

/// A SharePoint/OneDrive file operation (RecordType 6, or 4/7 for site events).
pub(crate) fn sp_file(
    t: &Tenant,
    r: &mut Rng,
    time: DateTime<Utc>,
    id: &str,
    f: &SpFile,
) -> String {
    sp_common(t, r, time, id, f).done()
}

/// A sharing operation (RecordType 14): SharingSet, AnonymousLinkCreated,
/// SharingInvitationCreated, AddedToSecureLink, CompanyLinkCreated.
pub(crate) fn sp_share(
    g: Gen<'_>,
    f: &SpFile,
    target_name: &str,
    target_type: &str,
    permission: &str,
) -> String {
    let Gen { t, r, time, id } = g;
    let mut o = sp_common(t, r, time, id, f);
    o.s(
        "EventData",
        &format!("<Permissions granted>{permission}</Permissions granted>"),
    )
    .s("TargetUserOrGroupName", target_name)
    .s("TargetUserOrGroupType", target_type)
    .g("UniqueSharingId", r);
    o.done()
}

/// SearchQueryPerformed (RecordType 4? no: 198 in newer tenants; we use 4 with SearchQueryText).
pub(crate) fn sp_search(
    t: &Tenant,
    r: &mut Rng,
    time: DateTime<Utc>,
    id: &str,
    u: &User,
    ip: &str,
    query: &str,
) -> String {
    let key = format!("i:0h.f|membership|{}@live.com", u.puid.to_ascii_lowercase());
    let site = format!(
        "https://{}.sharepoint.com/search",
        t.name.to_ascii_lowercase()
    );
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: "SearchQueryPerformed",
            rt: 4,
            rt_as_string: false,
            result: None,
            user_key: &key,
            user_type: 0,
            workload: "SharePoint",
            client_ip: Some(ip),
            object_id: Some(&site),
            user_id: &u.upn,
        },
    );
    o.g("CorrelationId", r)
        .s("EventSource", "SharePoint")
        .s("ItemType", "Page")
        .g("Site", r)
        .s("UserAgent", UAS[u.ua])
        .s("SearchQueryText", query)
        .s("QuerySource", "SharePointSearch");
    o.done()
}

/// A tenant sharing-policy change (RecordType 4, ModifiedProperties as strings).
pub(crate) fn sp_policy(
    g: Gen<'_>,
    u: &User,
    ip: &str,
    setting: &str,
    old: &str,
    new: &str,
) -> String {
    let Gen { t, r, time, id } = g;
    let key = format!("i:0h.f|membership|{}@live.com", u.puid.to_ascii_lowercase());
    let admin = format!(
        "https://{}-admin.sharepoint.com",
        t.name.to_ascii_lowercase()
    );
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: "SharingPolicyChanged",
            rt: 4,
            rt_as_string: false,
            result: None,
            user_key: &key,
            user_type: 0,
            workload: "SharePoint",
            client_ip: Some(ip),
            object_id: Some(&admin),
            user_id: &u.upn,
        },
    );
    o.g("CorrelationId", r)
        .s("EventSource", "SharePoint")
        .s("ItemType", "Tenant")
        .g("Site", r)
        .s("UserAgent", UAS[0])
        .raw(
            "ModifiedProperties",
            &format!(
                "[{{\"Name\":{},\"NewValue\":{},\"OldValue\":{}}}]",
                js(setting),
                js(new),
                js(old)
            ),
        );
    o.done()
}

pub(crate) struct Member<'a> {
    pub upn: &'a str,
    pub display: &'a str,
    pub org: &'a str,
}

pub(crate) struct TeamsChat<'a> {
    pub op: &'a str,
    pub user: &'a User,
    pub ip: &'a str,
    pub comm: &'a str,
    pub members: &'a [Member<'a>],
    /// (HasForeignTenantUsers, HasGuestUsers); None = no ParticipantInfo block.
    pub participant: Option<(bool, bool)>,
    pub domains: &'a [&'a str],
    pub tenants: &'a [&'a str],
    pub chat_name: &'a str,
}

/// A Teams chat/message record (RecordType 25) with optional `ParticipantInfo`.
pub(crate) fn teams_chat(
    t: &Tenant,
    r: &mut Rng,
    time: DateTime<Utc>,
    id: &str,
    c: &TeamsChat,
) -> String {
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: c.op,
            rt: 25,
            rt_as_string: false,
            result: None,
            user_key: &c.user.oid,
            user_type: 0,
            workload: "MicrosoftTeams",
            client_ip: Some(c.ip),
            object_id: None,
            user_id: &c.user.upn,
        },
    );
    let thread = format!("19:{}_{}@unq.gbl.spaces", c.user.oid, r.guid());
    o.s("ChatThreadId", &thread)
        .s("CommunicationType", c.comm)
        .s("ChatName", c.chat_name)
        .s("ItemName", "");
    let members: Vec<String> = c
        .members
        .iter()
        .map(|m| {
            format!(
                "{{\"DisplayName\":{},\"Role\":1,\"UPN\":{},\"OrganizationId\":{}}}",
                js(m.display),
                js(m.upn),
                js(m.org)
            )
        })
        .collect();
    o.raw("Members", &raw_array(&members));
    if c.op.starts_with("Message") {
        o.s("MessageId", &r.digits(13)).n("MessageVersion", 1);
    }
    if let Some((foreign, guest)) = c.participant {
        o.raw(
            "ParticipantInfo",
            &format!(
                "{{\"HasForeignTenantUsers\":{foreign},\"HasGuestUsers\":{guest},\"HasOtherGuestUsers\":false,\"HasUnauthenticatedUsers\":false,\"ParticipatingDomains\":{},\"ParticipatingTenantIds\":{}}}",
                str_array(c.domains),
                str_array(c.tenants)
            ),
        );
    }
    let resource = c.tenants.last().copied().unwrap_or(t.id.as_str());
    o.s("ResourceTenantId", resource).s("UserTenantId", &t.id).raw(
        "ExtraProperties",
        "[{\"Key\":\"Country\",\"Value\":\"nl\"},{\"Key\":\"ClientName\",\"Value\":\"skypeteams\"},{\"Key\":\"OsName\",\"Value\":\"windows\"}]",
    );
    o.done()
}

/// Team-level Teams events without ParticipantInfo (TeamCreated, TeamDeleted, MemberAdded,
/// TeamsSessionStarted).
pub(crate) fn teams_team(g: Gen<'_>, op: &str, u: &User, ip: &str, team: &str) -> String {
    let Gen { t, r, time, id } = g;
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt: 25,
            rt_as_string: false,
            result: None,
            user_key: &u.oid,
            user_type: 0,
            workload: "MicrosoftTeams",
            client_ip: Some(ip),
            object_id: None,
            user_id: &u.upn,
        },
    );
    if op != "TeamsSessionStarted" {
        o.s(
            "TeamGuid",
            &format!("19:{}@thread.tacv2", r.hex_upper(32).to_ascii_lowercase()),
        )
        .s("TeamName", team);
    }
    if op == "MemberAdded" {
        o.raw(
            "Members",
            &format!(
                "[{{\"DisplayName\":{},\"Role\":1,\"UPN\":{}}}]",
                js(&u.display),
                js(&u.upn)
            ),
        );
    }
    o.g("AADGroupId", r).s("CommunicationType", "Team").raw(
        "ExtraProperties",
        "[{\"Key\":\"TimeZone\",\"Value\":\"Europe/Amsterdam\"},{\"Key\":\"OsName\",\"Value\":\"windows\"}]",
    );
    o.done()
}

/// A DLP rule match (RecordType 11 SharePoint, 13 Exchange).
pub(crate) fn dlp(
    t: &Tenant,
    r: &mut Rng,
    time: DateTime<Utc>,
    id: &str,
    u: &User,
    exchange: bool,
) -> String {
    let (rt, wl) = if exchange {
        (13, "Exchange")
    } else {
        (11, "SharePoint")
    };
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op: "DLPRuleMatch",
            rt,
            rt_as_string: r.chance(0.1),
            result: None,
            user_key: "DlpAgent",
            user_type: 4,
            workload: wl,
            client_ip: None,
            object_id: Some(&format!("{}/Documents/{}", t.onedrive(u), "customers.xlsx")),
            user_id: &u.upn,
        },
    );
    o.g("IncidentId", r).raw(
        "PolicyDetails",
        &format!(
            "[{{\"PolicyId\":{},\"PolicyName\":\"GDPR Enhanced\",\"Rules\":[{{\"Actions\":[\"NotifyUser\"],\"ConditionsMatched\":{{\"SensitiveInformation\":[{{\"Count\":{},\"Confidence\":85,\"SensitiveType\":\"50842eb7-edc8-4019-85dd-5a5c1f2bb085\",\"SensitiveInformationTypeName\":\"Credit Card Number\"}}]}},\"RuleName\":\"High volume\",\"Severity\":\"High\"}}]}}]",
            js(&r.guid()),
            r.range(1, 40)
        ),
    )
    .b("SensitiveInfoDetectionIsIncluded", true);
    if exchange {
        o.raw(
            "ExchangeMetaData",
            &format!(
                "{{\"From\":{},\"To\":[\"j.doe@gmail.com\"],\"Subject\":\"customer list\",\"MessageID\":\"<{}@{}>\"}}",
                js(&u.upn),
                r.hex_upper(10),
                t.domain
            ),
        );
    } else {
        o.raw(
            "SharePointMetaData",
            &format!(
                "{{\"From\":{},\"FileName\":\"customers.xlsx\",\"SiteCollectionUrl\":{}}}",
                js(&u.upn),
                js(&t.onedrive(u))
            ),
        );
    }
    o.done()
}

/// A Power BI / Yammer style record for the General mix.
pub(crate) fn misc_general(
    t: &Tenant,
    r: &mut Rng,
    time: DateTime<Utc>,
    id: &str,
    u: &User,
    ip: &str,
    yammer: bool,
) -> String {
    let (op, rt, wl) = if yammer {
        ("GroupCreation", 22, "Yammer")
    } else {
        ("ViewReport", 20, "PowerBI")
    };
    let mut o = base(
        t,
        &Base {
            time,
            id,
            op,
            rt,
            rt_as_string: false,
            result: Some("Succeeded"),
            user_key: &u.puid,
            user_type: 0,
            workload: wl,
            client_ip: Some(ip),
            object_id: Some(if yammer {
                "Engineering"
            } else {
                "Sales dashboard"
            }),
            user_id: &u.upn,
        },
    );
    if yammer {
        o.s("ActorUserId", &u.upn)
            .s("ActorYammerUserId", &r.digits(11))
            .s("GroupName", "Engineering");
    } else {
        o.s("Activity", "ViewReport")
            .s("ItemName", "Sales dashboard")
            .s("WorkSpaceName", "Sales")
            .s("ReportName", "Sales dashboard")
            .s("DistributionMethod", "Workspace")
            .s("ConsumptionMethod", "Power BI Web")
            .s("UserAgent", UAS[u.ua]);
    }
    o.done()
}

const SUBJECTS: &[&str] = &[
    "Weekly sync",
    "Re: invoice 4471",
    "Lunch on Friday?",
    "Q3 planning",
    "Updated slides",
    "Travel approval",
    "Fw: customer feedback",
    "Meeting notes",
    "Contract draft v2",
];
const FILES: &[&str] = &[
    "Budget 2026.xlsx",
    "Team offsite.pptx",
    "Minutes.docx",
    "Roadmap.pptx",
    "Contract.pdf",
    "Photo.jpg",
    "Notes.txt",
    "Forecast.xlsx",
    "Handbook.pdf",
    "Design.vsdx",
];

/// One background record of content type `ct`, drawn by the seeded mix, with the rarer
/// Real-data quirks applied to a few: UserType/Version as strings, ExtendedProperties as one
/// string, ModifiedProperties as a list of strings.
pub(crate) fn background(
    t: &Tenant,
    r: &mut Rng,
    ct: ContentType,
    time: DateTime<Utc>,
    id: &str,
) -> String {
    let mut s = background_inner(t, r, ct, time, id);
    if r.chance(0.01) {
        s = s
            .replacen("\"UserType\":0,", "\"UserType\":\"0\",", 1)
            .replacen("\"Version\":1,", "\"Version\":\"1\",", 1);
    }
    if ct == ContentType::AzureActiveDirectory && r.chance(0.01) {
        s = stringify_field(&s, "ExtendedProperties");
    }
    if ct == ContentType::AzureActiveDirectory && s.contains("\"RecordType\":8,") && r.chance(0.05)
    {
        s = strings_list_field(&s, "ModifiedProperties");
    }
    s
}

/// Rewrites `"field":[...]` as `"field":"[...]"` (the array as one JSON string), keeping
/// Microsoft's key order.
fn stringify_field(s: &str, field: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(s) else {
        return s.to_string();
    };
    let Some(x) = v.get(field) else {
        return s.to_string();
    };
    let old = x.to_string();
    s.replacen(
        &format!("\"{field}\":{old}"),
        &format!("\"{field}\":{}", js(&old)),
        1,
    )
}

/// Rewrites `"field":[{…},{…}]` as a list of strings (`["Name=NewValue"]`), as older
/// records had.
fn strings_list_field(s: &str, field: &str) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(s) else {
        return s.to_string();
    };
    let Some(arr) = v.get(field).and_then(|a| a.as_array()) else {
        return s.to_string();
    };
    if arr.is_empty() {
        return s.to_string();
    }
    let items: Vec<String> = arr
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["Name"].as_str().unwrap_or(""),
                m["NewValue"].as_str().unwrap_or("")
            )
        })
        .collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let old = serde_json::Value::Array(arr.clone()).to_string();
    s.replacen(
        &format!("\"{field}\":{old}"),
        &format!("\"{field}\":{}", str_array(&refs)),
        1,
    )
}

fn background_inner(
    t: &Tenant,
    r: &mut Rng,
    ct: ContentType,
    time: DateTime<Utc>,
    id: &str,
) -> String {
    let u = &t.users[r.below(t.users.len() as u64) as usize];
    let ip_plain = if r.chance(0.6) {
        u.office_ip.clone()
    } else {
        u.home_ip.clone()
    };
    match ct {
        ContentType::AzureActiveDirectory => match r.weighted(&[62, 14, 8, 6, 2, 2]) {
            0 | 1 => {
                let failed = r.below(100) >= 82;
                let (err, status, detail) = if failed {
                    let e = *r.pick(&[
                        ("50126", "InvalidUserNameOrPassword"),
                        ("50074", "UserStrongAuthClientAuthNRequired"),
                        ("50140", "KmsiInterrupt"),
                        ("500121", "AuthenticationFailedSasError"),
                        ("50055", "InvalidPasswordExpiredPassword"),
                    ]);
                    let quirky = e.0 == "50074" || e.0 == "50140";
                    (
                        Some(e),
                        if quirky { "Success" } else { "Failed" },
                        if quirky { "Success" } else { "UserError" },
                    )
                } else {
                    (
                        None,
                        if r.chance(0.5) {
                            "Succeeded"
                        } else {
                            "Success"
                        },
                        if r.chance(0.3) { "Redirect" } else { "Success" },
                    )
                };
                let rq = if detail == "Redirect" {
                    "OAuth2:Authorize"
                } else {
                    *r.pick(&[
                        "OAuth2:Token",
                        "Login:login",
                        "SAS:EndAuth",
                        "OAuth2:Authorize",
                    ])
                };
                let key = u.oid.clone();
                let user_id = if failed && r.chance(0.05) {
                    "Not Available"
                } else {
                    u.upn.as_str()
                };
                let rt_as_string = r.chance(0.02);
                signin(
                    t,
                    r,
                    time,
                    id,
                    &SignIn {
                        user_id,
                        user_key: if user_id == "Not Available" {
                            "Not Available"
                        } else {
                            &key
                        },
                        user_type: 0,
                        failed,
                        result_status: status,
                        ip: &ip_plain,
                        ua: UAS[u.ua],
                        request_type: rq,
                        detail,
                        error: err,
                        app_id: [APP_EXO, APP_OFFICE, APP_TEAMS, APP_OFFICEHOME]
                            [(time.timestamp() as usize) % 4],
                        rt_as_string,
                    },
                )
            }
            2 => aad_directory(
                Gen { t, r, time, id },
                "Update user.",
                &t.users[0],
                &u.upn,
                &[
                    (
                        "DisplayName",
                        &format!("[\"{}\"]", u.display),
                        &format!("[\"{}\"]", u.display),
                    ),
                    ("Included Updated Properties", "", "DisplayName"),
                ],
                &[],
            ),
            3 => {
                let g = r.pick(&t.groups).clone();
                aad_directory(
                    Gen { t, r, time, id },
                    "Add member to group.",
                    &t.users[1],
                    &u.upn,
                    &[("Group.DisplayName", "", &g)],
                    &[],
                )
            }
            4 => aad_directory(
                Gen { t, r, time, id },
                "Add user.",
                &t.users[0],
                &u.upn,
                &[("AccountEnabled", "[]", "[true]")],
                &[],
            ),
            _ => aad_directory(
                Gen { t, r, time, id },
                "Reset user password.",
                &t.users[2],
                &u.upn,
                &[],
                &[],
            ),
        },
        ContentType::Exchange => {
            let ip = ip_shape(r, u);
            let subj = *r.pick(SUBJECTS);
            let ext = r.pick(&t.external).clone();
            let n_items = r.range(1, 12);
            match r.weighted(&[35, 12, 6, 8, 5, 6, 3, 1, 2, 1, 2, 1]) {
                0 => {
                    mail_items_accessed(Gen { t, r, time, id }, u, &ip, n_items, false, APP_OFFICE)
                }
                1 => mailbox_item(Gen { t, r, time, id }, "Send", u, &ip, subj, None),
                2 => mailbox_item(
                    Gen { t, r, time, id },
                    "Create",
                    u,
                    &ip,
                    subj,
                    Some("image001.png (5899b); Q3 figures.xlsx (48213b)"),
                ),
                3 => mailbox_item(
                    Gen { t, r, time, id },
                    "MoveToDeletedItems",
                    u,
                    &ip,
                    subj,
                    None,
                ),
                4 => mailbox_item(Gen { t, r, time, id }, "SoftDelete", u, &ip, subj, None),
                5 => mailbox_item(Gen { t, r, time, id }, "Update", u, &ip, subj, None),
                6 => {
                    let admin = &t.users[t.admins[0]];
                    let params_as_string = r.chance(0.2);
                    exchange_admin(
                        t,
                        r,
                        time,
                        id,
                        &ExAdmin {
                            cmdlet: "Set-Mailbox",
                            user: &admin.upn,
                            user_key: &admin.puid,
                            user_type: 2,
                            object_id: &u.upn,
                            params: &[("Identity", &u.upn), ("ProhibitSendQuota", "49.5 GB")],
                            params_as_string,
                            ip: &admin.office_ip,
                            result: "True",
                        },
                    )
                }
                7 => exchange_admin(
                    t,
                    r,
                    time,
                    id,
                    &ExAdmin {
                        cmdlet: "Install-AdminAuditLogConfig",
                        user: "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
                        user_key: "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)",
                        user_type: 4,
                        object_id: "Admin Audit Log Settings",
                        params: &[
                            ("Identity", "Admin Audit Log Settings"),
                            ("UnifiedAuditLogIngestionEnabled", "True"),
                        ],
                        params_as_string: false,
                        ip: "",
                        result: "True",
                    },
                ),
                8 => {
                    let admin = &t.users[t.admins[1]];
                    exchange_admin(
                        t,
                        r,
                        time,
                        id,
                        &ExAdmin {
                            cmdlet: "Set-CASMailbox",
                            user: &admin.upn,
                            user_key: &admin.puid,
                            user_type: 2,
                            object_id: &u.upn,
                            params: &[("Identity", &u.upn), ("OWAEnabled", "True")],
                            params_as_string: false,
                            ip: &admin.office_ip,
                            result: "True",
                        },
                    )
                }
                9 => exchange_admin(
                    t,
                    r,
                    time,
                    id,
                    &ExAdmin {
                        cmdlet: "New-InboxRule",
                        user: &u.upn,
                        user_key: &u.puid,
                        user_type: 0,
                        object_id: &format!("{}\\Newsletters", u.upn),
                        params: &[
                            ("Name", "Newsletters"),
                            ("SubjectContainsWords", "newsletter"),
                            ("MoveToFolder", "Newsletters"),
                        ],
                        params_as_string: false,
                        ip: &ip,
                        result: "True",
                    },
                ),
                10 => ome(
                    Gen { t, r, time, id },
                    "MessageAccess",
                    &u.upn,
                    &ext,
                    None,
                    subj,
                ),
                _ => ome(
                    Gen { t, r, time, id },
                    "AttachmentReview",
                    &u.upn,
                    &ext,
                    Some("terms.pdf"),
                    subj,
                ),
            }
        }
        ContentType::SharePoint => {
            let onedrive = r.chance(0.4);
            let site = if onedrive {
                t.onedrive(u)
            } else {
                r.pick(&t.sites).url.clone()
            };
            let folder = if onedrive {
                "Documents"
            } else {
                "Shared Documents"
            };
            let ip = if r.chance(0.1) {
                u.v6.clone()
            } else {
                ip_plain.clone()
            };
            let wl = if onedrive { "OneDrive" } else { "SharePoint" };
            let file = *r.pick(FILES);
            let ua = if r.chance(0.15) { UAS[6] } else { UAS[u.ua] };
            let op = [
                "FileAccessed",
                "FileModified",
                "FileDownloaded",
                "FileUploaded",
                "PageViewed",
                "FilePreviewed",
                "FileRecycled",
                "SharingSet",
                "SearchQueryPerformed",
                "FolderCreated",
                "CompanyLinkCreated",
                "FileSyncDownloadedFull",
            ][r.weighted(&[30, 12, 10, 9, 12, 5, 2, 3, 2, 2, 1, 2])];
            let f = SpFile {
                op,
                rt: if op == "PageViewed" { 4 } else { 6 },
                workload: wl,
                user: u,
                ip: &ip,
                ua,
                site_url: &site,
                folder,
                file: if op == "PageViewed" {
                    "Home.aspx"
                } else {
                    file
                },
                item_type: if op == "FolderCreated" {
                    "Folder"
                } else if op == "PageViewed" {
                    "Page"
                } else {
                    "File"
                },
            };
            match op {
                "SharingSet" | "CompanyLinkCreated" => {
                    let other = &t.users[r.below(t.users.len() as u64) as usize];
                    let f = SpFile { rt: 14, ..f };
                    if op == "SharingSet" {
                        sp_share(
                            Gen { t, r, time, id },
                            &f,
                            &other.upn,
                            "Member",
                            "Contribute",
                        )
                    } else {
                        {
                            let link =
                                format!("SharingLinks.{}.OrganizationView.{}", r.guid(), r.guid());
                            sp_share(Gen { t, r, time, id }, &f, &link, "SharePointGroup", "Read")
                        }
                    }
                }
                "SearchQueryPerformed" => {
                    let q = *r.pick(&[
                        "quarterly report",
                        "holiday calendar",
                        "expense policy",
                        "org chart",
                    ]);
                    sp_search(t, r, time, id, u, &ip, q)
                }
                _ => sp_file(t, r, time, id, &f),
            }
        }
        ContentType::General => {
            let internal = [Member {
                upn: &u.upn,
                display: &u.display,
                org: &t.id,
            }];
            let group = r.pick(&t.groups).clone();
            match r.weighted(&[20, 5, 4, 12, 3, 1, 2, 1, 6, 2]) {
                0 | 1 => {
                    let other = &t.users[r.below(t.users.len() as u64) as usize];
                    let members = [
                        Member {
                            upn: &u.upn,
                            display: &u.display,
                            org: &t.id,
                        },
                        Member {
                            upn: &other.upn,
                            display: &other.display,
                            org: &t.id,
                        },
                    ];
                    let domains = [t.domain.as_str()];
                    let tenants = [t.id.as_str()];
                    let op = if r.chance(0.8) {
                        "MessageSent"
                    } else {
                        "ChatCreated"
                    };
                    teams_chat(
                        t,
                        r,
                        time,
                        id,
                        &TeamsChat {
                            op,
                            user: u,
                            ip: &ip_plain,
                            comm: "OneOnOne",
                            members: &members,
                            participant: Some((false, false)),
                            domains: &domains,
                            tenants: &tenants,
                            chat_name: "",
                        },
                    )
                }
                2 => teams_chat(
                    t,
                    r,
                    time,
                    id,
                    &TeamsChat {
                        op: "MessageCreatedHasLink",
                        user: u,
                        ip: &ip_plain,
                        comm: "GroupChat",
                        members: &internal,
                        participant: None,
                        domains: &[],
                        tenants: &[],
                        chat_name: "Project Phoenix",
                    },
                ),
                3 => teams_team(
                    Gen { t, r, time, id },
                    "TeamsSessionStarted",
                    u,
                    &ip_plain,
                    "",
                ),
                4 => teams_team(Gen { t, r, time, id }, "MemberAdded", u, &ip_plain, &group),
                5 => teams_team(Gen { t, r, time, id }, "TeamCreated", u, &ip_plain, &group),
                6 => scc_alert(
                    Gen { t, r, time, id },
                    "AlertTriggered",
                    "Email messages containing malicious URL removed after delivery",
                    "Informational",
                    "ThreatManagement",
                    &u.upn,
                ),
                7 => scc_alert(
                    Gen { t, r, time, id },
                    "AlertEntityGenerated",
                    "Email messages containing malicious URL removed after delivery",
                    "Informational",
                    "ThreatManagement",
                    &u.upn,
                ),
                8 => misc_general(t, r, time, id, u, &ip_plain, false),
                _ => misc_general(t, r, time, id, u, &ip_plain, true),
            }
        }
        ContentType::DlpAll => {
            let exchange = r.chance(0.4);
            dlp(t, r, time, id, u, exchange)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordHeader;

    #[test]
    fn rec_time_matches_the_model() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-05-04T09:14:22.987Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rec_time(t), format_record_time(t));
    }

    #[test]
    fn background_records_parse_and_route_to_their_content_type() {
        let t = Tenant::generate(3, 2000);
        let time = chrono::DateTime::parse_from_rfc3339("2026-05-04T09:14:22Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut r = Rng::new(42);
        for ct in ContentType::ALL {
            for i in 0..400 {
                let id = r.guid();
                let s = background(&t, &mut r, ct, time, &id);
                let v: serde_json::Value =
                    serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
                let h = RecordHeader::from_value(&v).unwrap();
                assert_eq!(h.id, id);
                assert_eq!(h.content_type(), ct, "record {i}: {s}");
                assert_eq!(v["CreationTime"], "2026-05-04T09:14:22");
                assert_eq!(h.organization_id, t.id);
            }
        }
        let mut quirks = (0, 0, 0);
        for _ in 0..5000 {
            let id = r.guid();
            let s = background(&t, &mut r, ContentType::AzureActiveDirectory, time, &id);
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            quirks.0 += usize::from(v["ExtendedProperties"].is_string());
            quirks.1 += usize::from(
                v["ModifiedProperties"]
                    .as_array()
                    .is_some_and(|a| a.first().is_some_and(|x| x.is_string())),
            );
            quirks.2 += usize::from(v["UserType"].is_string());
        }
        assert!(quirks.0 > 0 && quirks.1 > 0 && quirks.2 > 0, "{quirks:?}");
    }
}
