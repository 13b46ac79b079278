//! The planted attack stories of the practice tenant: for every detection of
//! docs/detections.md (the guide's seven and rows #1–#25 of Beyond the seven) one or more stories whose
//! records must make it fire, and near-miss stories beside them that must not. The
//! detection team writes golden tests against [`stories`]; the feed publishes the same
//! records in the history (at fixed fractions of the history span, whatever the volume).
//!
//! Labels in `fires` / `must_not_fire`: the guide's ids (`authentication`,
//! `email_attachments`, `exchange_auditing_disabled`, `insider_risk_policies`,
//! `onedrive_exfiltration`, `teams_exfiltration`, `sharepoint_data_destruction`) meaning
//! the *corrected* rule of docs/detections.md (The guide's seven) unless the summary says "faithful", and
//! `s2.2#N` for row N of docs/detections.md (Beyond the seven).
//!
//! | story | user (index) | operations | near-miss story |
//! |---|---|---|---|
//! | brute_force | users\[5\] | 25× UserLoginFailed 50126 from 203.0.113.66, then UserLoggedIn | brute_force_near_miss: users\[6\], 4 failures + MFA interrupts with ResultStatus "Success" |
//! | password_spray | 15 users | 1 UserLoginFailed each from 203.0.113.77 in 10 min | not_available_failures: "Not Available" UserId |
//! | account_lockout | users\[7\] | UserLoginFailed 50053 IdsLocked | — |
//! | ome_attachment_download | users\[8\] sender | AttachmentDownload Q2-payroll.xlsx by someone@gmail.com | ome_near_miss: AttachmentReview, mailbox Create with Item.Attachments |
//! | audit_tamper_scc | users\[0\] | Remove-AuditConfigurationPolicy (RecordType 18, Parameters string) | audit_near_miss |
//! | audit_tamper_exchange_shape | users\[0\] | Remove-AuditConfigurationPolicy (RecordType 1, Parameters array) | audit_near_miss |
//! | audit_disabled_exchange | users\[1\] | Set-AdminAuditLogConfig, Set-MailboxAuditBypassAssociation, Set-Mailbox AuditEnabled, Set-OrganizationConfig | audit_near_miss: Install-AdminAuditLogConfig (SYSTEM), re-enable |
//! | insider_risk_policy_changes | users\[2\] | New-/Set-/Remove-InsiderRiskPolicy | insider_risk_near_miss: Get-InsiderRiskPolicy, IRM alert |
//! | insider_risk_entity_list | users\[2\] | New-InsiderRiskEntityList | — |
//! | onedrive_strategic_share | users\[9\] | SharingSet Strategic_Roadmap_FY26.pptx to a guest (OneDrive) | onedrive_share_near_miss: internal shares |
//! | teams_rogue_helpdesk | users\[10\] | ChatCreated/MessageSent with HasForeignTenantUsers true, "IT Help Desk" | teams_guest_chat_near_miss: HasForeignTenantUsers false |
//! | version_history_wipe | users\[11\] | FileVersionsAllDeleted (SharePoint) + 30× FileRecycled | deletion_near_miss: 3× FileRecycled, FileDeleted |
//! | version_history_wipe_onedrive | users\[11\] | FileVersionsAllDeleted (OneDrive) | — |
//! | mail_forwarding | users\[12\], users\[1\] | New-InboxRule ForwardTo, Set-Mailbox ForwardingSmtpAddress, UpdateInboxRules | forwarding_near_miss |
//! | evasive_inbox_rule | users\[12\] | New-InboxRule "." DeleteMessage | inbox_rule_near_miss |
//! | transport_rule_bcc | users\[1\] | New-TransportRule BlindCopyTo | transport_near_miss: Set-TransportConfig |
//! | email_security_tampering | users\[1\] | Remove-AntiPhishPolicy, Disable-SafeLinksRule, Set-DkimSigningConfig Enabled False, Disable-MalwareFilterRule | email_security_near_miss |
//! | mfa_removed | users\[1\] → users\[13\] | Update user. StrongAuthenticationMethod → [], Disable Strong Authentication. | mfa_near_miss: MFA registered |
//! | global_admin_granted | users\[1\] → users\[14\] | Add member to role. Global Administrator | role_near_miss: Reports Reader |
//! | mailbox_delegation | users\[1\] | Add-MailboxPermission FullAccess, Add-RecipientPermission SendAs, New-ManagementRoleAssignment | delegation_near_miss |
//! | federated_domain | users\[1\] | Add-FederatedDomain, Set domain authentication. | domain_near_miss: Verify domain. |
//! | illicit_consent | users\[16\] | Consent to application. (user consent) | consent_near_miss: admin consent |
//! | device_code_phish | users\[17\] | UserLoggedIn Cmsi:Cmsi broker app; axios UA | device_code_near_miss |
//! | ropc_legacy_auth | users\[18\] | UserLoggedIn UA BAV2ROPC | ropc_near_miss |
//! | impossible_travel | users\[19\] | UserLoggedIn 198.51.100.x then 203.0.113.200 after 20 min | travel_near_miss: office then home |
//! | mass_download | users\[21\] | 120× FileDownloaded in 20 min | mass_download_near_miss: 12 |
//! | scripted_download | users\[23\] | FileDownloaded by PnPPowerShell / WindowsPowerShell | scripted_near_miss: browser |
//! | anonymous_sharing | users\[24\] | AnonymousLinkCreated, AddedToSecureLink, SharingInvitationCreated, SharingPolicyChanged | sharing_near_miss: CompanyLinkCreated |
//! | malware_upload | users\[25\] | FileMalwareDetected, FileUploaded .exe | malware_near_miss |
//! | teams_mass_delete | users\[26\] | 3× TeamDeleted | — |
//! | mail_items_accessed_bulk | users\[27\] | MailItemsAccessed OperationCount 350, IsThrottled True | mail_access_near_miss |
//! | mfa_mail_deleted | users\[28\] | SoftDelete/HardDelete of MFA notification mails | mfa_mail_near_miss |
//! | sensitive_search | users\[29\] | SearchQueryPerformed "password" | search_near_miss |
//! | pst_export | users\[1\] | New-ComplianceSearchAction -Export PST | pst_near_miss: -Preview |
//! | microsoft_alerts | — | AlertTriggered / AlertEntityGenerated High | alert_near_miss: AlertUpdated |

use super::factory::*;
use super::rng::{Rng, mix};
use super::tenant::{Tenant, User};
use crate::model::{ContentType, RecordHeader};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// One record of a story.
#[derive(Debug, Clone, Serialize)]
pub struct StoryRecord {
    pub id: String,
    pub content_type: ContentType,
    pub creation_time: DateTime<Utc>,
    /// The raw record exactly as the API serves it.
    pub json: String,
}

/// One planted story (or near-miss).
#[derive(Debug, Clone, Serialize)]
pub struct Story {
    pub name: &'static str,
    pub summary: &'static str,
    pub near_miss: bool,
    pub fires: Vec<&'static str>,
    pub must_not_fire: Vec<&'static str>,
    pub user: String,
    pub operations: Vec<String>,
    pub records: Vec<StoryRecord>,
}

/// The stories of a practice tenant started with these options (seed, volume and start
/// time decide the tenant and where in the history the stories sit).
pub fn stories(opts: &super::SimOptions) -> Vec<Story> {
    let now = opts.now.unwrap_or_else(Utc::now);
    let anchor = super::anchor_of(now);
    let tenant = Tenant::generate(opts.seed, opts.records_per_day);
    let h0 = super::feed::history_start(anchor, opts.days);
    build(&tenant, opts.seed, h0, anchor)
}

/// What a story says about itself (its records come apart).
struct StoryMeta<'s> {
    name: &'static str,
    summary: &'static str,
    near_miss: bool,
    fires: &'s [&'static str],
    must_not_fire: &'s [&'static str],
    user: &'s str,
}

/// An Entra sign-in of a story, `secs` after the story's start.
struct Login<'a> {
    secs: i64,
    user: &'a User,
    ip: &'a str,
    ua: &'a str,
    /// `RequestType`, e.g. "OAuth2:Token".
    request: &'a str,
    /// `(ErrorNumber, LogonError)` of a failed sign-in.
    error: Option<(&'a str, &'a str)>,
    status: &'a str,
    /// `ResultStatusDetail`.
    detail: &'a str,
    /// The application id signed in to.
    app: &'a str,
}

/// A SharePoint or OneDrive file operation of a story.
struct SpfOp<'a> {
    secs: i64,
    op: &'a str,
    record_type: i64,
    /// OneDrive (the user's own site) rather than a SharePoint team site.
    onedrive: bool,
    user: &'a User,
    /// Index of the team site (ignored for OneDrive).
    site: usize,
    file: &'a str,
    ua: &'a str,
    ip: &'a str,
}

/// A sharing operation of a story (RecordType 14).
struct Share<'a> {
    secs: i64,
    op: &'a str,
    onedrive: bool,
    user: &'a User,
    site: usize,
    file: &'a str,
    /// Who the item is shared with, and their kind (`TargetUserOrGroupType`).
    target: &'a str,
    target_type: &'a str,
}

struct B<'a> {
    t: &'a Tenant,
    r: Rng,
    base: DateTime<Utc>,
    out: Vec<Story>,
}

impl<'a> B<'a> {
    fn u(&self, i: usize) -> &'a User {
        &self.t.users[i % self.t.users.len()]
    }

    fn story(&mut self, meta: StoryMeta, recs: Vec<(i64, String)>) {
        let StoryMeta {
            name,
            summary,
            near_miss,
            fires,
            must_not_fire,
            user,
        } = meta;
        let mut records = Vec::with_capacity(recs.len());
        let mut ops = Vec::new();
        for (_, json) in recs {
            let v: serde_json::Value =
                serde_json::from_str(&json).unwrap_or(serde_json::Value::Null);
            let Ok(h) = RecordHeader::from_value(&v) else {
                continue;
            };
            if !ops.contains(&h.operation) {
                ops.push(h.operation.clone());
            }
            records.push(StoryRecord {
                id: h.id.clone(),
                content_type: h.content_type(),
                creation_time: h.creation_time,
                json,
            });
        }
        self.out.push(Story {
            name,
            summary,
            near_miss,
            fires: fires.to_vec(),
            must_not_fire: must_not_fire.to_vec(),
            user: user.to_string(),
            operations: ops,
            records,
        });
    }

    fn at(&self, secs: i64) -> DateTime<Utc> {
        self.base + Duration::seconds(secs)
    }

    fn id(&mut self) -> String {
        self.r.guid()
    }
}

fn login(b: &mut B, l: Login) -> (i64, String) {
    let Login {
        secs,
        user: u,
        ip,
        ua,
        request: rq,
        error: err,
        status,
        detail,
        app,
    } = l;
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    let s = SignIn {
        user_id: &u.upn,
        user_key: &u.oid,
        user_type: 0,
        failed: err.is_some(),
        result_status: status,
        ip,
        ua,
        request_type: rq,
        detail,
        error: err,
        app_id: app,
        rt_as_string: false,
    };
    (secs, signin(t, &mut b.r, time, &id, &s))
}

fn exo(
    b: &mut B,
    secs: i64,
    cmdlet: &str,
    u: &User,
    object_id: &str,
    params: &[(&str, &str)],
    as_string: bool,
) -> (i64, String) {
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    let a = ExAdmin {
        cmdlet,
        user: &u.upn,
        user_key: &u.puid,
        user_type: 2,
        object_id,
        params,
        params_as_string: as_string,
        ip: &format!("{}:{}", u.office_ip, 50000 + secs.rem_euclid(9999)),
        result: "True",
    };
    (secs, exchange_admin(t, &mut b.r, time, &id, &a))
}

fn scc(
    b: &mut B,
    secs: i64,
    cmdlet: &str,
    u: &User,
    object_id: &str,
    params: &str,
) -> (i64, String) {
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    (
        secs,
        scc_cmdlet(
            Gen {
                t,
                r: &mut b.r,
                time,
                id: &id,
            },
            cmdlet,
            u,
            object_id,
            params,
            &u.office_ip,
        ),
    )
}

fn aad(
    b: &mut B,
    secs: i64,
    op: &str,
    actor: &User,
    target: &str,
    mods: &[(&str, &str, &str)],
) -> (i64, String) {
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    (
        secs,
        aad_directory(
            Gen {
                t,
                r: &mut b.r,
                time,
                id: &id,
            },
            op,
            actor,
            target,
            mods,
            &[],
        ),
    )
}

fn spf(b: &mut B, f: SpfOp) -> (i64, String) {
    let SpfOp {
        secs,
        op,
        record_type: rt,
        onedrive,
        user: u,
        site,
        file,
        ua,
        ip,
    } = f;
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    let site_url = if onedrive {
        t.onedrive(u)
    } else {
        t.sites[site % t.sites.len()].url.clone()
    };
    let f = SpFile {
        op,
        rt,
        workload: if onedrive { "OneDrive" } else { "SharePoint" },
        user: u,
        ip,
        ua,
        site_url: &site_url,
        folder: if onedrive {
            "Documents"
        } else {
            "Shared Documents"
        },
        file,
        item_type: "File",
    };
    (secs, sp_file(t, &mut b.r, time, &id, &f))
}

fn share(b: &mut B, sh: Share) -> (i64, String) {
    let Share {
        secs,
        op,
        onedrive,
        user: u,
        site,
        file,
        target,
        target_type: ttype,
    } = sh;
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    let site_url = if onedrive {
        t.onedrive(u)
    } else {
        t.sites[site % t.sites.len()].url.clone()
    };
    let f = SpFile {
        op,
        rt: 14,
        workload: if onedrive { "OneDrive" } else { "SharePoint" },
        user: u,
        ip: &u.office_ip,
        ua: super::tenant::UAS[0],
        site_url: &site_url,
        folder: if onedrive {
            "Documents"
        } else {
            "Shared Documents"
        },
        file,
        item_type: "File",
    };
    (
        secs,
        sp_share(
            Gen {
                t,
                r: &mut b.r,
                time,
                id: &id,
            },
            &f,
            target,
            ttype,
            "Contribute",
        ),
    )
}

fn item(
    b: &mut B,
    secs: i64,
    op: &str,
    u: &User,
    subject: &str,
    att: Option<&str>,
) -> (i64, String) {
    let id = b.id();
    let time = b.at(secs);
    let t = b.t;
    (
        secs,
        mailbox_item(
            Gen {
                t,
                r: &mut b.r,
                time,
                id: &id,
            },
            op,
            u,
            &u.office_ip,
            subject,
            att,
        ),
    )
}

/// Builds every story; `h0` is the start of the history, `anchor` its end.
pub(crate) fn build(t: &Tenant, seed: u64, h0: DateTime<Utc>, anchor: DateTime<Utc>) -> Vec<Story> {
    let span = (anchor - h0).num_seconds().max(3600);
    let mut b = B {
        t,
        r: Rng::new(mix(&[seed, 0x5704])),
        base: h0,
        out: Vec::new(),
    };
    let place = |b: &mut B, frac: f64| {
        b.base = h0 + Duration::seconds((span as f64 * frac) as i64);
        b.r = Rng::new(mix(&[seed, 0x5704, (frac * 1000.0) as u64]));
    };
    let ua_py = "python-requests/2.31.0";
    let ua_edge = super::tenant::UAS[0];
    let bad = Some(("50126", "InvalidUserNameOrPassword"));

    // --- authentication / brute force (guide D1, Beyond the seven #7)
    place(&mut b, 0.15);
    let v = b.u(5);
    let mut recs: Vec<(i64, String)> = (0..25)
        .map(|i| {
            login(
                &mut b,
                Login {
                    secs: i * 60,
                    user: v,
                    ip: "203.0.113.66",
                    ua: ua_py,
                    request: "OAuth2:Token",
                    error: bad,
                    status: "Failed",
                    detail: "UserError",
                    app: APP_EXO,
                },
            )
        })
        .collect();
    recs.push(login(
        &mut b,
        Login {
            secs: 25 * 60,
            user: v,
            ip: "203.0.113.66",
            ua: ua_py,
            request: "OAuth2:Token",
            error: None,
            status: "Success",
            detail: "Success",
            app: APP_EXO,
        },
    ));
    b.story(StoryMeta { name: "brute_force", summary: "25 failed sign-ins (50126) for one user from one IP in 25 minutes, then a success from that IP.", near_miss: false, fires: &["authentication", "s2.2#7"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.16);
    let v = b.u(6);
    let mut recs: Vec<(i64, String)> = (0..4)
        .map(|i| {
            login(
                &mut b,
                Login {
                    secs: i * 120,
                    user: v,
                    ip: &v.office_ip,
                    ua: ua_edge,
                    request: "Login:login",
                    error: bad,
                    status: "Failed",
                    detail: "UserError",
                    app: APP_OFFICEHOME,
                },
            )
        })
        .collect();
    for i in 0..3 {
        recs.push(login(
            &mut b,
            Login {
                secs: 600 + i * 30,
                user: v,
                ip: &v.office_ip,
                ua: ua_edge,
                request: "Login:login",
                error: Some(("50074", "UserStrongAuthClientAuthNRequired")),
                status: "Success",
                detail: "Success",
                app: APP_OFFICEHOME,
            },
        ));
    }
    recs.push(login(
        &mut b,
        Login {
            secs: 700,
            user: v,
            ip: &v.office_ip,
            ua: ua_edge,
            request: "OAuth2:Token",
            error: None,
            status: "Succeeded",
            detail: "Success",
            app: APP_OFFICEHOME,
        },
    ));
    b.story(StoryMeta { name: "brute_force_near_miss", summary: "4 mistyped passwords and 3 MFA interrupts (UserLoginFailed with ResultStatus \"Success\") then a success: below any brute-force threshold.", near_miss: true, fires: &["authentication"], must_not_fire: &["s2.2#7"], user: &v.upn }, recs);
    place(&mut b, 0.17);
    let mut recs = Vec::new();
    for i in 0..15 {
        let u = b.u(30 + i);
        recs.push(login(
            &mut b,
            Login {
                secs: i as i64 * 40,
                user: u,
                ip: "203.0.113.77",
                ua: ua_py,
                request: "OAuth2:Token",
                error: bad,
                status: "Failed",
                detail: "UserError",
                app: APP_EXO,
            },
        ));
    }
    b.story(
        StoryMeta {
            name: "password_spray",
            summary: "One IP tries one password against 15 users in 10 minutes.",
            near_miss: false,
            fires: &["authentication", "s2.2#7"],
            must_not_fire: &[],
            user: "203.0.113.77",
        },
        recs,
    );
    place(&mut b, 0.18);
    let v = b.u(7);
    let mut recs: Vec<(i64, String)> = (0..3)
        .map(|i| {
            login(
                &mut b,
                Login {
                    secs: i * 20,
                    user: v,
                    ip: "203.0.113.81",
                    ua: ua_py,
                    request: "OAuth2:Token",
                    error: bad,
                    status: "Failed",
                    detail: "UserError",
                    app: APP_EXO,
                },
            )
        })
        .collect();
    recs.push(login(
        &mut b,
        Login {
            secs: 80,
            user: v,
            ip: "203.0.113.81",
            ua: ua_py,
            request: "OAuth2:Token",
            error: Some(("50053", "IdsLocked")),
            status: "Failed",
            detail: "UserError",
            app: APP_EXO,
        },
    ));
    b.story(StoryMeta { name: "account_lockout", summary: "Failures end in an account lockout (ErrorNumber 50053, LogonError IdsLocked).", near_miss: false, fires: &["authentication", "s2.2#7"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.19);
    let mut recs = Vec::new();
    for i in 0..12 {
        let id = b.id();
        let time = b.at(i * 50);
        let s = SignIn {
            user_id: "Not Available",
            user_key: "Not Available",
            user_type: 4,
            failed: true,
            result_status: "Failed",
            ip: "203.0.113.90",
            ua: ua_py,
            request_type: "OAuth2:Token",
            detail: "UserError",
            error: Some(("50034", "UserAccountNotFound")),
            app_id: APP_EXO,
            rt_as_string: i % 3 == 0,
        };
        recs.push((i, signin(t, &mut b.r, time, &id, &s)));
    }
    b.story(StoryMeta { name: "not_available_failures", summary: "12 failures for unknown users: UserId \"Not Available\" (RecordType sometimes a string) must be excluded from per-user brute force.", near_miss: true, fires: &["authentication"], must_not_fire: &["s2.2#7"], user: "Not Available" }, recs);

    // --- OME attachment download (guide D2)
    place(&mut b, 0.20);
    let s = b.u(8);
    let id = b.id();
    let time = b.at(0);
    let rec = ome(
        Gen {
            t,
            r: &mut b.r,
            time,
            id: &id,
        },
        "AttachmentDownload",
        &s.upn,
        "someone@gmail.com",
        Some("Q2-payroll.xlsx"),
        "Payroll review",
    );
    b.story(StoryMeta { name: "ome_attachment_download", summary: "An external recipient downloads Q2-payroll.xlsx from the encrypted-message portal (RecordType 154; UserId is the sender, Recipient the downloader).", near_miss: false, fires: &["email_attachments"], must_not_fire: &[], user: &s.upn }, vec![(0, rec)]);
    place(&mut b, 0.21);
    let id = b.id();
    let time = b.at(0);
    let r1 = ome(
        Gen {
            t,
            r: &mut b.r,
            time,
            id: &id,
        },
        "AttachmentReview",
        &s.upn,
        "someone@gmail.com",
        Some("Q2-payroll.xlsx"),
        "Payroll review",
    );
    let r2 = item(
        &mut b,
        60,
        "Create",
        s,
        "Payroll review",
        Some("Q2-payroll.xlsx (48213b)"),
    );
    b.story(StoryMeta { name: "ome_near_miss", summary: "AttachmentReview in the portal and a mailbox Create with Item.Attachments: no download.", near_miss: true, fires: &[], must_not_fire: &["email_attachments"], user: &s.upn }, vec![(0, r1), r2]);

    // --- audit tampering (guide D3, Beyond the seven #4)
    place(&mut b, 0.30);
    let a0 = b.u(0);
    let r = scc(
        &mut b,
        0,
        "Remove-AuditConfigurationPolicy",
        a0,
        "a415dcce-19a0-4153-b137-eb6fd67995b5",
        "-Identity \"a415dcce-19a0-4153-b137-eb6fd67995b5\" -Confirm \"False\"",
    );
    b.story(StoryMeta { name: "audit_tamper_scc", summary: "Remove-AuditConfigurationPolicy in the Security & Compliance shape (RecordType 18, Workload SecurityComplianceCenter, Parameters a string); the faithful guide query (Workload Exchange) misses it.", near_miss: false, fires: &["exchange_auditing_disabled", "s2.2#4"], must_not_fire: &[], user: &a0.upn }, vec![r]);
    place(&mut b, 0.31);
    let r = exo(
        &mut b,
        0,
        "Remove-AuditConfigurationPolicy",
        a0,
        "a415dcce-19a0-4153-b137-eb6fd67995b5",
        &[
            ("Identity", "a415dcce-19a0-4153-b137-eb6fd67995b5"),
            ("Confirm", "False"),
        ],
        false,
    );
    b.story(StoryMeta { name: "audit_tamper_exchange_shape", summary: "Remove-AuditConfigurationPolicy in the Exchange admin shape (RecordType 1, Workload Exchange, Parameters array): the faithful guide query fires.", near_miss: false, fires: &["exchange_auditing_disabled", "s2.2#4"], must_not_fire: &[], user: &a0.upn }, vec![r]);
    place(&mut b, 0.32);
    let a1 = b.u(1);
    let v = b.u(3);
    let recs = vec![
        exo(
            &mut b,
            0,
            "Set-AdminAuditLogConfig",
            a1,
            &format!("{}\\Admin Audit Log Settings", t.onms),
            &[
                ("Identity", "Admin Audit Log Settings"),
                ("UnifiedAuditLogIngestionEnabled", "False"),
            ],
            false,
        ),
        exo(
            &mut b,
            60,
            "Set-AdminAuditLogConfig",
            a1,
            &format!("{}\\Admin Audit Log Settings", t.onms),
            &[("AdminAuditLogEnabled", "False")],
            true,
        ),
        exo(
            &mut b,
            120,
            "Set-MailboxAuditBypassAssociation",
            a1,
            &v.upn,
            &[("Identity", &v.upn), ("AuditBypassEnabled", "True")],
            false,
        ),
        exo(
            &mut b,
            180,
            "Set-Mailbox",
            a1,
            &v.upn,
            &[("Identity", &v.upn), ("AuditEnabled", "False")],
            false,
        ),
        exo(
            &mut b,
            240,
            "Set-OrganizationConfig",
            a1,
            &t.onms,
            &[("AuditDisabled", "True")],
            false,
        ),
    ];
    b.story(StoryMeta { name: "audit_disabled_exchange", summary: "Exchange-side audit switches: UnifiedAuditLogIngestionEnabled False, AdminAuditLogEnabled False (Parameters as a string), mailbox audit bypass, AuditEnabled False, AuditDisabled True.", near_miss: false, fires: &["s2.2#4"], must_not_fire: &[], user: &a1.upn }, recs);
    place(&mut b, 0.33);
    let id = b.id();
    let time = b.at(0);
    let sys = "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)";
    let r0 = exchange_admin(
        t,
        &mut b.r,
        time,
        &id,
        &ExAdmin {
            cmdlet: "Install-AdminAuditLogConfig",
            user: sys,
            user_key: sys,
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
    );
    let recs = vec![
        (0, r0),
        exo(
            &mut b,
            60,
            "Set-AdminAuditLogConfig",
            a1,
            "Admin Audit Log Settings",
            &[("UnifiedAuditLogIngestionEnabled", "True")],
            false,
        ),
        exo(
            &mut b,
            120,
            "Set-Mailbox",
            a1,
            &v.upn,
            &[("Identity", &v.upn), ("AuditEnabled", "True")],
            false,
        ),
    ];
    b.story(
        StoryMeta {
            name: "audit_near_miss",
            summary: "System install of the audit config and re-enabling audit: must not fire.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["exchange_auditing_disabled", "s2.2#4"],
            user: &a1.upn,
        },
        recs,
    );

    // --- insider risk (guide D4)
    place(&mut b, 0.35);
    let a2 = b.u(2);
    let recs = vec![
        scc(
            &mut b,
            0,
            "New-InsiderRiskPolicy",
            a2,
            "Data leaks",
            "-Name \"Data leaks\" -InsiderRiskScenario \"LeakOfIP\"",
        ),
        scc(
            &mut b,
            300,
            "Set-InsiderRiskPolicy",
            a2,
            "Data leaks",
            "-Identity \"Data leaks\" -Enabled \"False\"",
        ),
        scc(
            &mut b,
            600,
            "Remove-InsiderRiskPolicy",
            a2,
            "Departing users",
            "-Identity \"Departing users\" -Confirm \"False\"",
        ),
    ];
    b.story(
        StoryMeta {
            name: "insider_risk_policy_changes",
            summary: "An admin creates, disables and removes Insider Risk policies (S&C cmdlets).",
            near_miss: false,
            fires: &["insider_risk_policies"],
            must_not_fire: &[],
            user: &a2.upn,
        },
        recs,
    );
    place(&mut b, 0.355);
    let r = scc(
        &mut b,
        0,
        "New-InsiderRiskEntityList",
        a2,
        "Priority users",
        "-Name \"Priority users\" -Type \"CustomPriorityUserGroup\"",
    );
    b.story(StoryMeta { name: "insider_risk_entity_list", summary: "New-InsiderRiskEntityList: the corrected rule (insider_risk_policy_changes) fires, the faithful has(\"InsiderRiskPolicy\") does not.", near_miss: false, fires: &["insider_risk_policies"], must_not_fire: &[], user: &a2.upn }, vec![r]);
    place(&mut b, 0.36);
    let r1 = scc(
        &mut b,
        0,
        "Get-InsiderRiskPolicy",
        a2,
        "Data leaks",
        "-Identity \"Data leaks\"",
    );
    let id = b.id();
    let time = b.at(120);
    let r2 = scc_alert(
        Gen {
            t,
            r: &mut b.r,
            time,
            id: &id,
        },
        "AlertUpdated",
        "Insider risk alert triaged",
        "Low",
        "InsiderRiskManagement",
        &a2.upn,
    );
    b.story(StoryMeta { name: "insider_risk_near_miss", summary: "Get-InsiderRiskPolicy and an InsiderRiskManagement alert update: no policy change.", near_miss: true, fires: &[], must_not_fire: &["insider_risk_policies", "s2.2#25"], user: &a2.upn }, vec![r1, (120, r2)]);

    // --- OneDrive exfiltration (guide D5, Beyond the seven #17)
    place(&mut b, 0.40);
    let v = b.u(9);
    let recs = vec![
        share(
            &mut b,
            Share {
                secs: 0,
                op: "SharingSet",
                onedrive: true,
                user: v,
                site: 0,
                file: "Strategic_Roadmap_FY26.pptx",
                target: "partner_fabrikam-partners.com#ext#@contoso.onmicrosoft.com",
                target_type: "Guest",
            },
        ),
        share(
            &mut b,
            Share {
                secs: 30,
                op: "SharingInvitationCreated",
                onedrive: true,
                user: v,
                site: 0,
                file: "Strategic_Roadmap_FY26.pptx",
                target: "partner@fabrikam-partners.com",
                target_type: "Guest",
            },
        ),
    ];
    b.story(StoryMeta { name: "onedrive_strategic_share", summary: "A user shares Strategic_Roadmap_FY26.pptx from OneDrive with an external guest.", near_miss: false, fires: &["onedrive_exfiltration", "s2.2#17"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.41);
    let w = b.u(4);
    let recs = vec![
        share(
            &mut b,
            Share {
                secs: 0,
                op: "SharingSet",
                onedrive: true,
                user: v,
                site: 0,
                file: "Holiday photos.jpg",
                target: &w.upn,
                target_type: "Member",
            },
        ),
        share(
            &mut b,
            Share {
                secs: 60,
                op: "SharingSet",
                onedrive: false,
                user: v,
                site: 11,
                file: "Agenda.docx",
                target: &w.upn,
                target_type: "Member",
            },
        ),
    ];
    b.story(StoryMeta { name: "onedrive_share_near_miss", summary: "Internal shares: a OneDrive photo and a file on the StrategicPlanning team site (the word is in the site URL only, and the workload is SharePoint).", near_miss: true, fires: &[], must_not_fire: &["onedrive_exfiltration", "s2.2#17"], user: &v.upn }, recs);

    // --- Teams (guide D6, Beyond the seven #20)
    place(&mut b, 0.45);
    let v = b.u(10);
    let evil = "310e9ead-4f6f-491e-aafe-feb08c8d17a4";
    let members = [
        Member {
            upn: "helpdesk@m365-support-team.onmicrosoft.com",
            display: "IT Help Desk",
            org: evil,
        },
        Member {
            upn: &v.upn,
            display: &v.display,
            org: &t.id,
        },
    ];
    let domains = [t.domain.as_str(), "m365-support-team.onmicrosoft.com"];
    let tenants = [t.id.as_str(), evil];
    let mut recs = Vec::new();
    for (i, op) in ["ChatCreated", "MessageSent"].iter().enumerate() {
        let id = b.id();
        let time = b.at(i as i64 * 45);
        recs.push((
            i as i64,
            teams_chat(
                t,
                &mut b.r,
                time,
                &id,
                &TeamsChat {
                    op,
                    user: v,
                    ip: &v.home_ip,
                    comm: "OneOnOne",
                    members: &members,
                    participant: Some((true, false)),
                    domains: &domains,
                    tenants: &tenants,
                    chat_name: "",
                },
            ),
        ));
    }
    b.story(StoryMeta { name: "teams_rogue_helpdesk", summary: "A one-on-one chat from another tenant's \"IT Help Desk\" (HasForeignTenantUsers true).", near_miss: false, fires: &["teams_exfiltration", "s2.2#20"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.46);
    let members = [
        Member {
            upn: "consultant_outlook.com#EXT#@contoso.onmicrosoft.com",
            display: "Consultant (Guest)",
            org: &t.id,
        },
        Member {
            upn: &v.upn,
            display: &v.display,
            org: &t.id,
        },
    ];
    let domains = [t.domain.as_str()];
    let tenants = [t.id.as_str()];
    let id = b.id();
    let time = b.at(0);
    let r = teams_chat(
        t,
        &mut b.r,
        time,
        &id,
        &TeamsChat {
            op: "ChatCreated",
            user: v,
            ip: &v.office_ip,
            comm: "GroupChat",
            members: &members,
            participant: Some((false, true)),
            domains: &domains,
            tenants: &tenants,
            chat_name: "Project review",
        },
    );
    b.story(StoryMeta { name: "teams_guest_chat_near_miss", summary: "A guest chat: ParticipantInfo present with HasForeignTenantUsers false. The faithful guide query (isnotnull) fires; the corrected one must not.", near_miss: true, fires: &[], must_not_fire: &["teams_exfiltration", "s2.2#20"], user: &v.upn }, vec![(0, r)]);

    // --- destruction (guide D7, Beyond the seven #19)
    place(&mut b, 0.50);
    let v = b.u(11);
    let mut recs = vec![spf(
        &mut b,
        SpfOp {
            secs: 0,
            op: "FileVersionsAllDeleted",
            record_type: 6,
            onedrive: false,
            user: v,
            site: 0,
            file: "Budget 2026.xlsx",
            ua: ua_edge,
            ip: &v.office_ip,
        },
    )];
    for i in 0..30 {
        recs.push(spf(
            &mut b,
            SpfOp {
                secs: 60 + i * 15,
                op: "FileRecycled",
                record_type: 6,
                onedrive: false,
                user: v,
                site: 0,
                file: &format!("Ledger {:02}.xlsx", i + 1),
                ua: ua_edge,
                ip: &v.office_ip,
            },
        ));
    }
    b.story(StoryMeta { name: "version_history_wipe", summary: "FileVersionsAllDeleted on the Finance site, then 30 files recycled in under 10 minutes.", near_miss: false, fires: &["sharepoint_data_destruction", "s2.2#19"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.505);
    let r = spf(
        &mut b,
        SpfOp {
            secs: 0,
            op: "FileVersionsAllDeleted",
            record_type: 6,
            onedrive: true,
            user: v,
            site: 0,
            file: "Cap table.xlsx",
            ua: ua_edge,
            ip: &v.office_ip,
        },
    );
    b.story(StoryMeta { name: "version_history_wipe_onedrive", summary: "FileVersionsAllDeleted in OneDrive: the faithful guide query (Workload SharePoint) misses it; a corrected one covers both workloads.", near_miss: false, fires: &["sharepoint_data_destruction", "s2.2#19"], must_not_fire: &[], user: &v.upn }, vec![r]);
    place(&mut b, 0.51);
    let w = b.u(12);
    let recs = vec![
        spf(
            &mut b,
            SpfOp {
                secs: 0,
                op: "FileRecycled",
                record_type: 6,
                onedrive: false,
                user: w,
                site: 2,
                file: "Old price list.xlsx",
                ua: ua_edge,
                ip: &w.office_ip,
            },
        ),
        spf(
            &mut b,
            SpfOp {
                secs: 120,
                op: "FileRecycled",
                record_type: 6,
                onedrive: false,
                user: w,
                site: 2,
                file: "Draft.docx",
                ua: ua_edge,
                ip: &w.office_ip,
            },
        ),
        spf(
            &mut b,
            SpfOp {
                secs: 240,
                op: "FileRecycled",
                record_type: 6,
                onedrive: true,
                user: w,
                site: 2,
                file: "Copy of notes.txt",
                ua: ua_edge,
                ip: &w.office_ip,
            },
        ),
        spf(
            &mut b,
            SpfOp {
                secs: 300,
                op: "FileDeleted",
                record_type: 6,
                onedrive: false,
                user: w,
                site: 2,
                file: "Scratch.txt",
                ua: ua_edge,
                ip: &w.office_ip,
            },
        ),
    ];
    b.story(
        StoryMeta {
            name: "deletion_near_miss",
            summary: "Three recycled files and one FileDeleted (old name): ordinary housekeeping.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["sharepoint_data_destruction", "s2.2#19"],
            user: &w.upn,
        },
        recs,
    );

    // --- Beyond the seven #1 forwarding, #2 evasive rules, #3 transport rules
    place(&mut b, 0.55);
    let v = b.u(12);
    let recs = vec![
        exo(
            &mut b,
            0,
            "New-InboxRule",
            v,
            &format!("{}\\Sync", v.upn),
            &[
                ("Name", "Sync"),
                ("ForwardTo", "j.doe@gmail.com"),
                ("StopProcessingRules", "True"),
            ],
            false,
        ),
        exo(
            &mut b,
            120,
            "Set-Mailbox",
            a1,
            &v.upn,
            &[
                ("Identity", &v.upn),
                ("ForwardingSmtpAddress", "smtp:someone@protonmail.com"),
                ("DeliverToMailboxAndForward", "False"),
            ],
            false,
        ),
        {
            let s = item(&mut b, 240, "UpdateInboxRules", v, "", None).1;
            let mut s = s[..s.len() - 1].to_string();
            s.push_str(",\"OperationProperties\":[{\"Name\":\"RuleActions\",\"Value\":\"[{\\\"Actions\\\":[{\\\"Recipients\\\":[\\\"j.doe@gmail.com\\\"]}],\\\"ActionType\\\":\\\"ForwardToRecipientsAction\\\"}]\"},{\"Name\":\"RuleName\",\"Value\":\"Sync2\"}]}");
            (240, s)
        },
    ];
    b.story(StoryMeta { name: "mail_forwarding", summary: "Inbox rule forwarding to gmail, admin sets ForwardingSmtpAddress to protonmail without keeping a copy, and an Outlook-client UpdateInboxRules forward.", near_miss: false, fires: &["s2.2#1"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.56);
    let colleague = b.u(13);
    let recs = vec![
        exo(
            &mut b,
            0,
            "Set-Mailbox",
            a1,
            &v.upn,
            &[
                ("Identity", &v.upn),
                ("ForwardingSmtpAddress", &format!("smtp:{}", colleague.upn)),
                ("DeliverToMailboxAndForward", "True"),
            ],
            false,
        ),
        exo(
            &mut b,
            60,
            "New-InboxRule",
            v,
            &format!("{}\\Newsletters", v.upn),
            &[
                ("Name", "Newsletters"),
                ("SubjectContainsWords", "newsletter"),
                ("MoveToFolder", "Newsletters"),
            ],
            false,
        ),
    ];
    b.story(StoryMeta { name: "forwarding_near_miss", summary: "Forwarding to a colleague in the tenant's own domain and a move-to-folder rule.", near_miss: true, fires: &[], must_not_fire: &["s2.2#1", "s2.2#2"], user: &v.upn }, recs);
    place(&mut b, 0.57);
    let r = exo(
        &mut b,
        0,
        "New-InboxRule",
        v,
        &format!("{}\\.", v.upn),
        &[
            ("Name", "."),
            ("SubjectContainsWords", "invoice;payment;wire transfer"),
            ("DeleteMessage", "True"),
            ("MarkAsRead", "True"),
        ],
        false,
    );
    b.story(
        StoryMeta {
            name: "evasive_inbox_rule",
            summary: "A punctuation-named inbox rule deleting finance mails.",
            near_miss: false,
            fires: &["s2.2#2"],
            must_not_fire: &[],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.575);
    let r = exo(
        &mut b,
        0,
        "New-InboxRule",
        v,
        &format!("{}\\Receipts", v.upn),
        &[
            ("Name", "Receipts"),
            ("SubjectContainsWords", "receipt"),
            ("MoveToFolder", "Receipts"),
        ],
        false,
    );
    b.story(
        StoryMeta {
            name: "inbox_rule_near_miss",
            summary: "A tidy rule moving receipts to a folder.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#1", "s2.2#2"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.58);
    let r = exo(
        &mut b,
        0,
        "New-TransportRule",
        a1,
        "Archive copy",
        &[
            ("Name", "Archive copy"),
            ("SentToScope", "NotInOrganization"),
            ("BlindCopyTo", "archive@protonmail.com"),
        ],
        false,
    );
    b.story(
        StoryMeta {
            name: "transport_rule_bcc",
            summary: "A transport rule BCCing outbound mail to an external mailbox.",
            near_miss: false,
            fires: &["s2.2#3"],
            must_not_fire: &[],
            user: &a1.upn,
        },
        vec![r],
    );
    place(&mut b, 0.585);
    let r = exo(
        &mut b,
        0,
        "Set-TransportConfig",
        a1,
        &t.onms,
        &[("MaxSendSize", "35 MB")],
        false,
    );
    b.story(
        StoryMeta {
            name: "transport_near_miss",
            summary: "Set-TransportConfig (not a rule).",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#3"],
            user: &a1.upn,
        },
        vec![r],
    );

    // --- #5 email security tampering
    place(&mut b, 0.60);
    let recs = vec![
        exo(
            &mut b,
            0,
            "Remove-AntiPhishPolicy",
            a1,
            "Office365 AntiPhish Default",
            &[
                ("Identity", "Strict Preset Security Policy"),
                ("Confirm", "False"),
            ],
            false,
        ),
        exo(
            &mut b,
            60,
            "Disable-SafeLinksRule",
            a1,
            "Safe Links Rule",
            &[("Identity", "Safe Links Rule")],
            false,
        ),
        exo(
            &mut b,
            120,
            "Set-DkimSigningConfig",
            a1,
            &t.domain,
            &[("Identity", &t.domain), ("Enabled", "False")],
            false,
        ),
        exo(
            &mut b,
            180,
            "Disable-MalwareFilterRule",
            a1,
            "Default malware rule",
            &[("Identity", "Default malware rule")],
            false,
        ),
    ];
    b.story(
        StoryMeta {
            name: "email_security_tampering",
            summary: "Anti-phish removed, Safe Links and malware rules disabled, DKIM signing off.",
            near_miss: false,
            fires: &["s2.2#5"],
            must_not_fire: &[],
            user: &a1.upn,
        },
        recs,
    );
    place(&mut b, 0.605);
    let recs = vec![
        exo(
            &mut b,
            0,
            "Set-DkimSigningConfig",
            a1,
            &t.domain,
            &[("Identity", &t.domain), ("Enabled", "True")],
            false,
        ),
        exo(
            &mut b,
            60,
            "New-AntiPhishPolicy",
            a1,
            "Finance strict",
            &[
                ("Name", "Finance strict"),
                ("EnableMailboxIntelligence", "True"),
            ],
            false,
        ),
    ];
    b.story(
        StoryMeta {
            name: "email_security_near_miss",
            summary: "DKIM enabled and a new anti-phish policy: hardening, not tampering.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#5"],
            user: &a1.upn,
        },
        recs,
    );

    // --- #6 MFA removed, #8 role grant, #10 federation, #11 consent
    place(&mut b, 0.62);
    let v = b.u(13);
    let recs = vec![
        aad(
            &mut b,
            0,
            "Update user.",
            a1,
            &v.upn,
            &[
                (
                    "StrongAuthenticationMethod",
                    "[{\"MethodType\":6,\"Default\":true},{\"MethodType\":7,\"Default\":false}]",
                    "[]",
                ),
                (
                    "Included Updated Properties",
                    "",
                    "StrongAuthenticationMethod",
                ),
            ],
        ),
        aad(
            &mut b,
            30,
            "Disable Strong Authentication.",
            a1,
            &v.upn,
            &[],
        ),
    ];
    b.story(StoryMeta { name: "mfa_removed", summary: "An admin clears a user's MFA methods (StrongAuthenticationMethod → \"[]\", values are JSON strings) and disables strong auth.", near_miss: false, fires: &["s2.2#6"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.625);
    let r = aad(
        &mut b,
        0,
        "Update user.",
        v,
        &v.upn,
        &[
            (
                "StrongAuthenticationMethod",
                "[]",
                "[{\"MethodType\":6,\"Default\":true}]",
            ),
            (
                "Included Updated Properties",
                "",
                "StrongAuthenticationMethod",
            ),
        ],
    );
    b.story(
        StoryMeta {
            name: "mfa_near_miss",
            summary: "A user registers MFA (from [] to a method).",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#6"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.64);
    let v = b.u(14);
    let r = aad(
        &mut b,
        0,
        "Add member to role.",
        a1,
        &v.upn,
        &[
            ("Role.ObjectID", "", "62e90394-69f5-4237-9190-012177145e10"),
            ("Role.DisplayName", "", "Global Administrator"),
            ("Role.WellKnownObjectName", "", "TenantAdmins"),
        ],
    );
    b.story(
        StoryMeta {
            name: "global_admin_granted",
            summary: "Global Administrator granted to a regular user.",
            near_miss: false,
            fires: &["s2.2#8"],
            must_not_fire: &[],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.645);
    let r = aad(
        &mut b,
        0,
        "Add member to role.",
        a1,
        &v.upn,
        &[("Role.DisplayName", "", "Reports Reader")],
    );
    b.story(
        StoryMeta {
            name: "role_near_miss",
            summary: "Reports Reader granted: not privileged.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#8"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.66);
    let ceo = b.u(0);
    let recs = vec![
        exo(
            &mut b,
            0,
            "Add-MailboxPermission",
            a1,
            &ceo.upn,
            &[
                ("Identity", &ceo.upn),
                ("User", &v.upn),
                ("AccessRights", "FullAccess"),
                ("InheritanceType", "All"),
            ],
            false,
        ),
        exo(
            &mut b,
            60,
            "Add-RecipientPermission",
            a1,
            &ceo.upn,
            &[
                ("Identity", &ceo.upn),
                ("Trustee", &v.upn),
                ("AccessRights", "SendAs"),
            ],
            false,
        ),
        exo(
            &mut b,
            120,
            "New-ManagementRoleAssignment",
            a1,
            "ApplicationImpersonation-svc",
            &[("Role", "ApplicationImpersonation"), ("User", &v.upn)],
            false,
        ),
    ];
    b.story(
        StoryMeta {
            name: "mailbox_delegation",
            summary: "FullAccess and SendAs on the CEO mailbox, plus ApplicationImpersonation.",
            near_miss: false,
            fires: &["s2.2#9"],
            must_not_fire: &[],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.665);
    let cal = format!("{}:\\Calendar", v.upn);
    let r = exo(
        &mut b,
        0,
        "Add-MailboxFolderPermission",
        v,
        &cal,
        &[
            ("Identity", &cal),
            ("User", &ceo.upn),
            ("AccessRights", "Reviewer"),
        ],
        false,
    );
    b.story(
        StoryMeta {
            name: "delegation_near_miss",
            summary: "Calendar Reviewer permission for a colleague.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#9"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.68);
    let recs = vec![
        exo(
            &mut b,
            0,
            "Add-FederatedDomain",
            a1,
            &format!("{}-sso.com", t.name.to_ascii_lowercase()),
            &[(
                "DomainName",
                &format!("{}-sso.com", t.name.to_ascii_lowercase()),
            )],
            false,
        ),
        aad(
            &mut b,
            60,
            "Set domain authentication.",
            a1,
            &format!("{}-sso.com", t.name.to_ascii_lowercase()),
            &[("LiveType", "Managed", "Federated")],
        ),
    ];
    b.story(
        StoryMeta {
            name: "federated_domain",
            summary: "A federated domain is added and switched to federated authentication.",
            near_miss: false,
            fires: &["s2.2#10"],
            must_not_fire: &[],
            user: &a1.upn,
        },
        recs,
    );
    place(&mut b, 0.685);
    let r = aad(
        &mut b,
        0,
        "Verify domain.",
        a1,
        &format!("mail.{}", t.domain),
        &[],
    );
    b.story(
        StoryMeta {
            name: "domain_near_miss",
            summary: "A managed subdomain is verified.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#10"],
            user: &a1.upn,
        },
        vec![r],
    );
    place(&mut b, 0.70);
    let v = b.u(16);
    let id = b.id();
    let time = b.at(0);
    let mut r = Rng::new(mix(&[seed, 0xC0]));
    let rec = aad_directory(
        Gen {
            t,
            r: &mut r,
            time,
            id: &id,
        },
        "Consent to application.",
        v,
        "MailSync Pro",
        &[
            ("ConsentContext.IsAdminConsent", "", "False"),
            ("ConsentContext.OnBehalfOfAll", "", "False"),
            (
                "ConsentAction.Permissions",
                "",
                "[] => [[Id: x, ClientId: 7b2f1c9e-0000-4d6a-9a51-3e2d1c0b9a87, PrincipalId: y, ResourceId: z, ConsentType: Principal, Scope:  Mail.Read Mail.Send offline_access User.Read]]; ",
            ),
        ],
        &[],
    );
    b.story(StoryMeta { name: "illicit_consent", summary: "A user consents to an unknown app asking Mail.Read, Mail.Send and offline_access.", near_miss: false, fires: &["s2.2#11"], must_not_fire: &[], user: &v.upn }, vec![(0, rec)]);
    place(&mut b, 0.705);
    let id = b.id();
    let time = b.at(0);
    let rec = aad_directory(
        Gen {
            t,
            r: &mut r,
            time,
            id: &id,
        },
        "Consent to application.",
        a0,
        "Zoom",
        &[
            ("ConsentContext.IsAdminConsent", "", "True"),
            ("ConsentContext.OnBehalfOfAll", "", "True"),
            ("ConsentAction.Permissions", "", "Scope: User.Read"),
        ],
        &[],
    );
    b.story(
        StoryMeta {
            name: "consent_near_miss",
            summary: "An admin consents for the organisation to a known app.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#11"],
            user: &a0.upn,
        },
        vec![(0, rec)],
    );

    // --- #12 device code / AiTM, #13 ROPC, #14 travel
    place(&mut b, 0.72);
    let v = b.u(17);
    let recs = vec![
        login(
            &mut b,
            Login {
                secs: 0,
                user: v,
                ip: "203.0.113.120",
                ua: ua_edge,
                request: "Cmsi:Cmsi",
                error: None,
                status: "Success",
                detail: "Success",
                app: APP_BROKER,
            },
        ),
        login(
            &mut b,
            Login {
                secs: 90,
                user: v,
                ip: "203.0.113.121",
                ua: "axios/1.7.7",
                request: "OAuth2:Token",
                error: None,
                status: "Success",
                detail: "Success",
                app: APP_OFFICE,
            },
        ),
    ];
    b.story(StoryMeta { name: "device_code_phish", summary: "Device-code sign-in (Cmsi:Cmsi) to the Authentication Broker, then a token from an axios client on another IP.", near_miss: false, fires: &["authentication", "s2.2#12"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.725);
    let r = login(
        &mut b,
        Login {
            secs: 0,
            user: v,
            ip: &v.office_ip,
            ua: ua_edge,
            request: "OAuth2:Token",
            error: None,
            status: "Success",
            detail: "Success",
            app: APP_OFFICE,
        },
    );
    b.story(
        StoryMeta {
            name: "device_code_near_miss",
            summary: "An ordinary browser token request.",
            near_miss: true,
            fires: &["authentication"],
            must_not_fire: &["s2.2#12", "s2.2#13"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.74);
    let v = b.u(18);
    let r = login(
        &mut b,
        Login {
            secs: 0,
            user: v,
            ip: "203.0.113.140",
            ua: "BAV2ROPC",
            request: "OAuth2:Token",
            error: None,
            status: "Success",
            detail: "Success",
            app: APP_EXO,
        },
    );
    b.story(
        StoryMeta {
            name: "ropc_legacy_auth",
            summary: "Legacy ROPC sign-in (UserAgent BAV2ROPC).",
            near_miss: false,
            fires: &["authentication", "s2.2#13"],
            must_not_fire: &[],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.745);
    let r = login(
        &mut b,
        Login {
            secs: 0,
            user: v,
            ip: &v.office_ip,
            ua: super::tenant::UAS[4],
            request: "OAuth2:Token",
            error: None,
            status: "Success",
            detail: "Success",
            app: APP_EXO,
        },
    );
    b.story(
        StoryMeta {
            name: "ropc_near_miss",
            summary: "Outlook desktop sign-in.",
            near_miss: true,
            fires: &["authentication"],
            must_not_fire: &["s2.2#13"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.76);
    let v = b.u(19);
    let recs = vec![
        login(
            &mut b,
            Login {
                secs: 0,
                user: v,
                ip: &v.office_ip,
                ua: ua_edge,
                request: "Login:login",
                error: None,
                status: "Success",
                detail: "Success",
                app: APP_OFFICEHOME,
            },
        ),
        login(
            &mut b,
            Login {
                secs: 1200,
                user: v,
                ip: "203.0.113.200",
                ua: ua_edge,
                request: "Login:login",
                error: None,
                status: "Success",
                detail: "Success",
                app: APP_OFFICEHOME,
            },
        ),
    ];
    b.story(StoryMeta { name: "impossible_travel", summary: "Sign-in from the office (198.51.100.0/24, Netherlands in the practice geo table) and 20 minutes later from 203.0.113.200 (Brazil in the practice geo table).", near_miss: false, fires: &["authentication", "s2.2#14"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.765);
    let v = b.u(20);
    let recs = vec![
        login(
            &mut b,
            Login {
                secs: 0,
                user: v,
                ip: &v.office_ip,
                ua: ua_edge,
                request: "Login:login",
                error: None,
                status: "Success",
                detail: "Success",
                app: APP_OFFICEHOME,
            },
        ),
        login(
            &mut b,
            Login {
                secs: 1200,
                user: v,
                ip: &v.home_ip,
                ua: ua_edge,
                request: "Login:login",
                error: None,
                status: "Success",
                detail: "Success",
                app: APP_OFFICEHOME,
            },
        ),
    ];
    b.story(
        StoryMeta {
            name: "travel_near_miss",
            summary: "Office then home (192.0.2.0/24, same country) 20 minutes later.",
            near_miss: true,
            fires: &["authentication"],
            must_not_fire: &["s2.2#14"],
            user: &v.upn,
        },
        recs,
    );

    // --- #15 mass download, #16 scripted, #17 sharing, #18 malware
    place(&mut b, 0.80);
    let v = b.u(21);
    let recs: Vec<_> = (0..120)
        .map(|i| {
            spf(
                &mut b,
                SpfOp {
                    secs: i * 10,
                    op: "FileDownloaded",
                    record_type: 6,
                    onedrive: false,
                    user: v,
                    site: 0,
                    file: &format!("Contract {:03}.pdf", i + 1),
                    ua: ua_edge,
                    ip: &v.home_ip,
                },
            )
        })
        .collect();
    b.story(
        StoryMeta {
            name: "mass_download",
            summary: "120 files downloaded from the Finance site in 20 minutes.",
            near_miss: false,
            fires: &["s2.2#15"],
            must_not_fire: &[],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.805);
    let w = b.u(22);
    let recs: Vec<_> = (0..12)
        .map(|i| {
            spf(
                &mut b,
                SpfOp {
                    secs: i * 60,
                    op: "FileDownloaded",
                    record_type: 6,
                    onedrive: false,
                    user: w,
                    site: 2,
                    file: &format!("Deck {:02}.pptx", i + 1),
                    ua: ua_edge,
                    ip: &w.office_ip,
                },
            )
        })
        .collect();
    b.story(
        StoryMeta {
            name: "mass_download_near_miss",
            summary: "12 downloads in 12 minutes.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#15"],
            user: &w.upn,
        },
        recs,
    );
    place(&mut b, 0.82);
    let v = b.u(23);
    let recs = vec![
        spf(
            &mut b,
            SpfOp {
                secs: 0,
                op: "FileDownloaded",
                record_type: 6,
                onedrive: false,
                user: v,
                site: 5,
                file: "Client list.xlsx",
                ua: "Microsoft.SharePoint.Client/16.0 PnPPowerShell/2.4.0",
                ip: "203.0.113.150",
            },
        ),
        spf(
            &mut b,
            SpfOp {
                secs: 60,
                op: "FileDownloaded",
                record_type: 6,
                onedrive: false,
                user: v,
                site: 5,
                file: "NDA template.docx",
                ua: "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.5129",
                ip: "203.0.113.150",
            },
        ),
    ];
    b.story(
        StoryMeta {
            name: "scripted_download",
            summary: "Downloads by PnP PowerShell and Windows PowerShell from a new IP.",
            near_miss: false,
            fires: &["s2.2#16"],
            must_not_fire: &[],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.825);
    let r = spf(
        &mut b,
        SpfOp {
            secs: 0,
            op: "FileDownloaded",
            record_type: 6,
            onedrive: false,
            user: v,
            site: 5,
            file: "Client list.xlsx",
            ua: ua_edge,
            ip: &v.office_ip,
        },
    );
    b.story(
        StoryMeta {
            name: "scripted_near_miss",
            summary: "The same download from a browser at the office.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#16"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.84);
    let v = b.u(24);
    let id = b.id();
    let time = b.at(180);
    let mut r = Rng::new(mix(&[seed, 0x5A]));
    let pol = sp_policy(
        Gen {
            t,
            r: &mut r,
            time,
            id: &id,
        },
        a1,
        &a1.office_ip,
        "SharingCapability",
        "ExternalUserSharingOnly",
        "ExternalUserAndGuestSharing",
    );
    let recs = vec![
        share(
            &mut b,
            Share {
                secs: 0,
                op: "AnonymousLinkCreated",
                onedrive: true,
                user: v,
                site: 0,
                file: "Customer export.csv",
                target: &format!(
                    "SharingLinks.{}.AnonymousEdit.{}",
                    "7f06ab3a-bd98-41d3-a0b2-ad270d71e4d8", "32d45261-ee92-408d-9c93-bc4c8cfe98f6"
                ),
                target_type: "SharePointGroup",
            },
        ),
        share(
            &mut b,
            Share {
                secs: 60,
                op: "AddedToSecureLink",
                onedrive: true,
                user: v,
                site: 0,
                file: "Customer export.csv",
                target: "j.doe@gmail.com",
                target_type: "Guest",
            },
        ),
        share(
            &mut b,
            Share {
                secs: 120,
                op: "SharingInvitationCreated",
                onedrive: false,
                user: v,
                site: 2,
                file: "Price list.xlsx",
                target: "invoices@supplier-eu.com",
                target_type: "Guest",
            },
        ),
        (180, pol),
    ];
    b.story(StoryMeta { name: "anonymous_sharing", summary: "An Anyone link, a secure link to gmail, an external invitation, and the tenant sharing policy loosened.", near_miss: false, fires: &["s2.2#17"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.845);
    let w = b.u(25);
    let recs = vec![
        share(
            &mut b,
            Share {
                secs: 0,
                op: "CompanyLinkCreated",
                onedrive: true,
                user: v,
                site: 0,
                file: "Team lunch.docx",
                target: &format!(
                    "SharingLinks.{}.OrganizationView.{}",
                    "9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b", "0a1b2c3d-4000-5000-6000-708090a0b0c0"
                ),
                target_type: "SharePointGroup",
            },
        ),
        share(
            &mut b,
            Share {
                secs: 60,
                op: "SharingInvitationCreated",
                onedrive: false,
                user: v,
                site: 2,
                file: "Price list.xlsx",
                target: &w.upn,
                target_type: "Member",
            },
        ),
    ];
    b.story(
        StoryMeta {
            name: "sharing_near_miss",
            summary: "An organisation-only link and an invitation to a colleague.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#17", "onedrive_exfiltration"],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.86);
    let v = b.u(25);
    let recs = vec![
        spf(
            &mut b,
            SpfOp {
                secs: 0,
                op: "FileUploaded",
                record_type: 6,
                onedrive: true,
                user: v,
                site: 0,
                file: "invoice_viewer.exe",
                ua: ua_edge,
                ip: &v.home_ip,
            },
        ),
        spf(
            &mut b,
            SpfOp {
                secs: 300,
                op: "FileMalwareDetected",
                record_type: 6,
                onedrive: true,
                user: v,
                site: 0,
                file: "invoice_viewer.exe",
                ua: "",
                ip: "",
            },
        ),
    ];
    b.story(
        StoryMeta {
            name: "malware_upload",
            summary: "An executable is uploaded to OneDrive and flagged as malware.",
            near_miss: false,
            fires: &["s2.2#18"],
            must_not_fire: &[],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.865);
    let r = spf(
        &mut b,
        SpfOp {
            secs: 0,
            op: "FileUploaded",
            record_type: 6,
            onedrive: true,
            user: v,
            site: 0,
            file: "exe-install-notes.docx",
            ua: ua_edge,
            ip: &v.office_ip,
        },
    );
    b.story(
        StoryMeta {
            name: "malware_near_miss",
            summary: "A document whose name mentions exe.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#18"],
            user: &v.upn,
        },
        vec![r],
    );

    // --- #19 Teams deletes, #21 MailItemsAccessed, #22 MFA mails, #23 search, #24 PST, #25 alerts
    place(&mut b, 0.87);
    let v = b.u(26);
    let mut recs = Vec::new();
    for (i, team) in ["Project Phoenix", "Sales EMEA", "Board Members"]
        .iter()
        .enumerate()
    {
        let id = b.id();
        let time = b.at(i as i64 * 120);
        recs.push((
            0,
            teams_team(
                Gen {
                    t,
                    r: &mut b.r,
                    time,
                    id: &id,
                },
                "TeamDeleted",
                v,
                &v.home_ip,
                team,
            ),
        ));
    }
    b.story(
        StoryMeta {
            name: "teams_mass_delete",
            summary: "Three teams deleted in four minutes.",
            near_miss: false,
            fires: &["s2.2#19"],
            must_not_fire: &[],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.88);
    let v = b.u(27);
    let id = b.id();
    let time = b.at(0);
    let rec = mail_items_accessed(
        Gen {
            t,
            r: &mut b.r,
            time,
            id: &id,
        },
        v,
        "203.0.113.160",
        350,
        true,
        "3a2b8c1e-7f6d-4e5c-9b8a-1f2e3d4c5b6a",
    );
    b.story(
        StoryMeta {
            name: "mail_items_accessed_bulk",
            summary: "350 mail items bound in one aggregate, throttled, by an unusual client app.",
            near_miss: false,
            fires: &["s2.2#21"],
            must_not_fire: &[],
            user: &v.upn,
        },
        vec![(0, rec)],
    );
    place(&mut b, 0.885);
    let id = b.id();
    let time = b.at(0);
    let rec = mail_items_accessed(
        Gen {
            t,
            r: &mut b.r,
            time,
            id: &id,
        },
        v,
        &v.office_ip,
        3,
        false,
        APP_OFFICE,
    );
    b.story(
        StoryMeta {
            name: "mail_access_near_miss",
            summary: "Three items read in Outlook.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#21"],
            user: &v.upn,
        },
        vec![(0, rec)],
    );
    place(&mut b, 0.90);
    let v = b.u(28);
    let recs = vec![
        item(
            &mut b,
            0,
            "SoftDelete",
            v,
            "You added a new sign-in method to your account",
            None,
        ),
        item(
            &mut b,
            20,
            "HardDelete",
            v,
            "New device registered: Windows 11 (Chrome)",
            None,
        ),
    ];
    b.story(StoryMeta { name: "mfa_mail_deleted", summary: "Notification mails about a new MFA method and a new device are deleted right away.", near_miss: false, fires: &["s2.2#22"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.905);
    let r = item(&mut b, 0, "SoftDelete", v, "Lunch on Friday?", None);
    b.story(
        StoryMeta {
            name: "mfa_mail_near_miss",
            summary: "An ordinary mail deleted.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#22"],
            user: &v.upn,
        },
        vec![r],
    );
    place(&mut b, 0.92);
    let v = b.u(29);
    let mut r = Rng::new(mix(&[seed, 0x5E]));
    let recs = vec![
        {
            let id = b.id();
            (
                0,
                sp_search(t, &mut r, b.at(0), &id, v, "203.0.113.170", "password"),
            )
        },
        {
            let id = b.id();
            (
                30,
                sp_search(
                    t,
                    &mut r,
                    b.at(30),
                    &id,
                    v,
                    "203.0.113.170",
                    "vpn credentials",
                ),
            )
        },
    ];
    b.story(
        StoryMeta {
            name: "sensitive_search",
            summary: "SharePoint searches for password and vpn credentials.",
            near_miss: false,
            fires: &["s2.2#23"],
            must_not_fire: &[],
            user: &v.upn,
        },
        recs,
    );
    place(&mut b, 0.925);
    let r2 = {
        let id = b.id();
        sp_search(t, &mut r, b.at(0), &id, v, &v.office_ip, "quarterly report")
    };
    b.story(
        StoryMeta {
            name: "search_near_miss",
            summary: "A search for the quarterly report.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#23"],
            user: &v.upn,
        },
        vec![(0, r2)],
    );
    place(&mut b, 0.94);
    let r = scc(
        &mut b,
        0,
        "New-ComplianceSearchAction",
        a1,
        "All mailboxes_Export",
        "-SearchName \"All mailboxes\" -Export -Format \"FxStream\" -ExchangeArchiveFormat \"PerUserPst\" -Scope \"IndexedItemsOnly\"",
    );
    b.story(
        StoryMeta {
            name: "pst_export",
            summary: "A compliance search of all mailboxes exported as PST.",
            near_miss: false,
            fires: &["s2.2#24"],
            must_not_fire: &[],
            user: &a1.upn,
        },
        vec![r],
    );
    place(&mut b, 0.945);
    let r = scc(
        &mut b,
        0,
        "New-ComplianceSearchAction",
        a1,
        "Legal hold_Preview",
        "-SearchName \"Legal hold\" -Preview",
    );
    b.story(
        StoryMeta {
            name: "pst_near_miss",
            summary: "A compliance search preview.",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#24"],
            user: &a1.upn,
        },
        vec![r],
    );
    place(&mut b, 0.96);
    let v = b.u(12);
    let mut r = Rng::new(mix(&[seed, 0xA1]));
    let recs = vec![
        {
            let id = b.id();
            (
                0,
                scc_alert(
                    Gen {
                        t,
                        r: &mut r,
                        time: b.at(0),
                        id: &id,
                    },
                    "AlertTriggered",
                    "Suspicious email forwarding activity",
                    "High",
                    "ThreatManagement",
                    &v.upn,
                ),
            )
        },
        {
            let id = b.id();
            (
                5,
                scc_alert(
                    Gen {
                        t,
                        r: &mut r,
                        time: b.at(5),
                        id: &id,
                    },
                    "AlertEntityGenerated",
                    "Suspicious email forwarding activity",
                    "High",
                    "ThreatManagement",
                    &v.upn,
                ),
            )
        },
    ];
    b.story(StoryMeta { name: "microsoft_alerts", summary: "Microsoft's own alert about the forwarding (Data is a JSON string, RecordType a string).", near_miss: false, fires: &["s2.2#25"], must_not_fire: &[], user: &v.upn }, recs);
    place(&mut b, 0.965);
    let r3 = {
        let id = b.id();
        scc_alert(
            Gen {
                t,
                r: &mut r,
                time: b.at(0),
                id: &id,
            },
            "AlertUpdated",
            "Suspicious email forwarding activity",
            "High",
            "ThreatManagement",
            &v.upn,
        )
    };
    b.story(
        StoryMeta {
            name: "alert_near_miss",
            summary: "The same alert updated (AlertUpdated is not forwarded).",
            near_miss: true,
            fires: &[],
            must_not_fire: &["s2.2#25"],
            user: &v.upn,
        },
        vec![(0, r3)],
    );
    b.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_parse_and_cover_every_detection() {
        let t = Tenant::generate(1, 2000);
        let anchor = chrono::DateTime::parse_from_rfc3339("2026-05-08T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let h0 = anchor - Duration::days(7);
        let s = build(&t, 1, h0, anchor);
        let all: Vec<&str> = s.iter().flat_map(|s| s.fires.iter().copied()).collect();
        for d in [
            "authentication",
            "email_attachments",
            "exchange_auditing_disabled",
            "insider_risk_policies",
            "onedrive_exfiltration",
            "teams_exfiltration",
            "sharepoint_data_destruction",
        ] {
            assert!(all.contains(&d), "{d}");
        }
        for n in 1..=25 {
            let l = format!("s2.2#{n}");
            assert!(all.iter().any(|x| *x == l), "{l}");
        }
        let mut ids = std::collections::HashSet::new();
        for st in &s {
            assert!(!st.records.is_empty(), "{}", st.name);
            for r in &st.records {
                assert!(ids.insert(r.id.clone()), "dup id in {}", st.name);
                assert!(
                    r.creation_time >= h0 && r.creation_time < anchor,
                    "{}",
                    st.name
                );
            }
        }
        assert!(s.iter().any(|s| s.near_miss));
        // deterministic
        let s2 = build(&t, 1, h0, anchor);
        assert_eq!(s[3].records[0].json, s2[3].records[0].json);
    }
}
