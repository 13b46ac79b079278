//! How a story is told: the record kinds a story is written in (one small row struct per
//! kind, with a constructor that fills the usual values so a story names only what
//! differs) and the [`Scene`] that turns a story's rows into records. The stories
//! themselves are in the sibling modules; this module knows no story.
//!
//! Each row draws its `Id` and then its random fields from the story's random stream, in
//! the order the rows are written, so a story's records depend only on the seed, the
//! story's place in the history and its own rows (and, for the few rows on a side stream,
//! on the earlier stories sharing it). The records come out in time order.

use super::super::factory::*;
use super::super::json::nv;
use super::super::rng::{Rng, mix};
use super::super::tenant::{Tenant, UAS, User};
use super::{Story, StoryRecord};
use crate::model::RecordHeader;
use chrono::{DateTime, Duration, Utc};

/// The user agent of a script (brute force, spraying).
pub(super) const UA_PYTHON: &str = "python-requests/2.31.0";
/// The user agent of a browser (Edge on Windows).
pub(super) const UA_BROWSER: &str = UAS[0];
/// The `(ErrorNumber, LogonError)` of a wrong password.
pub(super) const BAD_PASSWORD: (&str, &str) = ("50126", "InvalidUserNameOrPassword");

/// One story: what it claims and its records, in the order they are made.
pub(super) struct Plot<'a> {
    pub name: &'static str,
    pub near_miss: bool,
    /// The detections that must fire on it (see the module doc of `stories` for labels).
    pub fires: &'static [&'static str],
    pub must_not_fire: &'static [&'static str],
    /// Whom the story is about (`Story::user`).
    pub about: &'a str,
    pub summary: &'static str,
    /// Rows of the kinds below, usually written with `rows![…]`.
    pub records: Vec<Rec<'a>>,
}

/// One record of a story: a row of one of the kinds below.
#[derive(Clone, Copy)]
pub(super) struct Rec<'a> {
    /// Seconds after the story's start (the row's `at`).
    secs: i64,
    /// The salt of a side stream its random fields come from (see [`Row::on_side`]).
    side: Option<u64>,
    kind: Kind<'a>,
}

/// What every row can do besides becoming a record.
pub(super) trait Row<'a>: Into<Rec<'a>> {
    /// Draw the record's random fields (not its `Id`) from the side stream `salt`, which
    /// every story naming the same salt continues. A few stories were written so; the
    /// practice tenant's records stay as they have been.
    fn on_side(self, salt: u64) -> Rec<'a> {
        Rec {
            side: Some(salt),
            ..self.into()
        }
    }

    /// `n` such records, `step` seconds apart from the row's `at`.
    fn repeated(self, n: i64, step: i64) -> Vec<Rec<'a>> {
        let first: Rec = self.into();
        (0..n)
            .map(|i| Rec {
                secs: first.secs + i * step,
                ..first
            })
            .collect()
    }
}

impl<'a, T: Into<Rec<'a>>> Row<'a> for T {}

/// The record kinds stories are written in.
#[derive(Clone, Copy)]
enum Kind<'a> {
    Login(Login<'a>),
    Exo(Exo<'a>),
    Scc(Scc<'a>),
    Aad(Aad<'a>),
    File(File<'a>),
    Share(Share<'a>),
    Mail(Mail<'a>),
    Ome(Ome<'a>),
    Alert(Alert<'a>),
    Chat(Chat<'a>),
    Team(Team<'a>),
    Access(Access<'a>),
    Search(Search<'a>),
    Policy(Policy<'a>),
}

macro_rules! kinds {
    ($($kind:ident),* $(,)?) => {
        $(impl<'a> From<$kind<'a>> for Rec<'a> {
            fn from(row: $kind<'a>) -> Self {
                Rec {
                    secs: row.at,
                    side: None,
                    kind: Kind::$kind(row),
                }
            }
        })*
    };
}
kinds!(
    Login, Exo, Scc, Aad, File, Share, Mail, Ome, Alert, Chat, Team, Access, Search, Policy,
);

// Every row kind: `at` is the record's offset in seconds from the story's start, and the
// constructor (`by`, …) fills the usual values, `at` 0 among them.

/// An Entra sign-in (RecordType 15): UserLoggedIn, or UserLoginFailed when `error` is set.
#[derive(Clone, Copy)]
pub(super) struct Login<'a> {
    pub at: i64,
    /// None: an account Entra does not know (UserId "Not Available", UserType 4).
    pub user: Option<&'a User>,
    pub ip: &'a str,
    pub ua: &'a str,
    /// `RequestType`, e.g. "OAuth2:Token".
    pub request: &'a str,
    /// `(ErrorNumber, LogonError)` of a failed sign-in.
    pub error: Option<(&'a str, &'a str)>,
    pub status: &'a str,
    /// `ResultStatusDetail`.
    pub detail: &'a str,
    /// The application id signed in to.
    pub app: &'a str,
    /// `RecordType` as a string, as real data sometimes has it.
    pub rt_as_string: bool,
}

impl<'a> Login<'a> {
    /// A successful browser sign-in to Office from the user's office.
    pub(super) fn by(u: &'a User) -> Self {
        Login {
            user: Some(u),
            ip: &u.office_ip,
            ..Login::unknown()
        }
    }

    /// A sign-in for an unknown account, otherwise as [`Login::by`] (set `ip`).
    pub(super) fn unknown() -> Self {
        Login {
            at: 0,
            user: None,
            ip: "",
            ua: UA_BROWSER,
            request: "Login:login",
            error: None,
            status: "Success",
            detail: "Success",
            app: APP_OFFICEHOME,
            rt_as_string: false,
        }
    }

    /// The same sign-in failing with `(ErrorNumber, LogonError)`.
    pub(super) fn failed(self, error: (&'a str, &'a str)) -> Self {
        Login {
            error: Some(error),
            status: "Failed",
            detail: "UserError",
            ..self
        }
    }
}

/// An Exchange admin cmdlet (RecordType 1), from the admin's office.
#[derive(Clone, Copy)]
pub(super) struct Exo<'a> {
    pub at: i64,
    /// None: Exchange's own service host (NT AUTHORITY\SYSTEM, UserType 4, no ClientIP).
    pub by: Option<&'a User>,
    pub cmdlet: &'a str,
    pub object: &'a str,
    pub params: &'a [(&'a str, &'a str)],
    /// `Parameters` as one string rather than `[{Name,Value}]`.
    pub params_as_string: bool,
}

impl<'a> Exo<'a> {
    pub(super) fn by(u: &'a User) -> Self {
        Exo {
            by: Some(u),
            ..Exo::system()
        }
    }

    /// A cmdlet Exchange's service host runs.
    pub(super) fn system() -> Self {
        Exo {
            at: 0,
            by: None,
            cmdlet: "",
            object: "",
            params: &[],
            params_as_string: false,
        }
    }
}

/// A Security & Compliance cmdlet (RecordType 18, `Parameters` a string), from the admin's
/// office.
#[derive(Clone, Copy)]
pub(super) struct Scc<'a> {
    pub at: i64,
    pub by: &'a User,
    pub cmdlet: &'a str,
    pub object: &'a str,
    pub params: &'a str,
}

impl<'a> Scc<'a> {
    pub(super) fn by(u: &'a User) -> Self {
        Scc {
            at: 0,
            by: u,
            cmdlet: "",
            object: "",
            params: "",
        }
    }
}

/// A directory audit event (RecordType 8).
#[derive(Clone, Copy)]
pub(super) struct Aad<'a> {
    pub at: i64,
    pub by: &'a User,
    pub op: &'a str,
    pub target: &'a str,
    /// `ModifiedProperties`: (name, old value, new value).
    pub mods: &'a [(&'a str, &'a str, &'a str)],
}

impl<'a> Aad<'a> {
    pub(super) fn by(u: &'a User) -> Self {
        Aad {
            at: 0,
            by: u,
            op: "",
            target: "",
            mods: &[],
        }
    }
}

/// Where a SharePoint or OneDrive item lives.
#[derive(Clone, Copy)]
pub(super) enum Place {
    /// The user's own OneDrive.
    OneDrive,
    /// The team site with this index (see `Tenant::sites`).
    Site(usize),
}

/// A SharePoint or OneDrive file operation (RecordType 6).
#[derive(Clone, Copy)]
pub(super) struct File<'a> {
    pub at: i64,
    pub user: &'a User,
    pub op: &'a str,
    pub place: Place,
    pub file: &'a str,
    pub ua: &'a str,
    pub ip: &'a str,
}

impl<'a> File<'a> {
    /// On a file of the first team site, from a browser at the user's office.
    pub(super) fn by(u: &'a User) -> Self {
        File {
            at: 0,
            user: u,
            op: "",
            place: Place::Site(0),
            file: "",
            ua: UA_BROWSER,
            ip: &u.office_ip,
        }
    }
}

/// A sharing operation (RecordType 14), from a browser at the user's office.
#[derive(Clone, Copy)]
pub(super) struct Share<'a> {
    pub at: i64,
    pub user: &'a User,
    pub op: &'a str,
    pub place: Place,
    pub file: &'a str,
    /// Who the item is shared with, and their kind (`TargetUserOrGroupType`).
    pub target: &'a str,
    pub target_type: &'a str,
}

impl<'a> Share<'a> {
    /// A file of the user's OneDrive shared with a guest.
    pub(super) fn by(u: &'a User) -> Self {
        Share {
            at: 0,
            user: u,
            op: "",
            place: Place::OneDrive,
            file: "",
            target: "",
            target_type: "Guest",
        }
    }
}

/// A mailbox item operation (RecordType 2/3), in Outlook on the web at the user's office.
#[derive(Clone, Copy)]
pub(super) struct Mail<'a> {
    pub at: i64,
    pub user: &'a User,
    pub op: &'a str,
    pub subject: &'a str,
    /// `Item.Attachments` (Create/Send).
    pub attachments: Option<&'a str>,
    /// `OperationProperties` as `[{Name,Value}]` after the other fields, as the Outlook
    /// client's UpdateInboxRules has them; none when empty.
    pub properties: &'a [(&'a str, &'a str)],
}

impl<'a> Mail<'a> {
    pub(super) fn by(u: &'a User) -> Self {
        Mail {
            at: 0,
            user: u,
            op: "",
            subject: "",
            attachments: None,
            properties: &[],
        }
    }
}

/// The encrypted-message portal (RecordType 154): the sender is `UserId`.
#[derive(Clone, Copy)]
pub(super) struct Ome<'a> {
    pub at: i64,
    pub sender: &'a User,
    pub op: &'a str,
    pub recipient: &'a str,
    pub attachment: Option<&'a str>,
    pub subject: &'a str,
}

impl<'a> Ome<'a> {
    pub(super) fn by(sender: &'a User) -> Self {
        Ome {
            at: 0,
            sender,
            op: "",
            recipient: "",
            attachment: None,
            subject: "",
        }
    }
}

/// A Security & Compliance alert (RecordType 40) about `about`.
#[derive(Clone, Copy)]
pub(super) struct Alert<'a> {
    pub at: i64,
    pub op: &'a str,
    pub name: &'a str,
    pub severity: &'a str,
    pub category: &'a str,
    pub about: &'a str,
}

impl<'a> Alert<'a> {
    /// A threat-management alert of high severity about the user `about`.
    pub(super) fn about(about: &'a str) -> Self {
        Alert {
            at: 0,
            op: "",
            name: "",
            severity: "High",
            category: "ThreatManagement",
            about,
        }
    }
}

/// A Teams chat or message (RecordType 25).
#[derive(Clone, Copy)]
pub(super) struct Chat<'a> {
    pub at: i64,
    pub user: &'a User,
    pub op: &'a str,
    pub ip: &'a str,
    /// `CommunicationType`: OneOnOne, GroupChat.
    pub comm: &'a str,
    pub members: &'a [Member<'a>],
    /// `ParticipantInfo`: (HasForeignTenantUsers, HasGuestUsers); None: no such block.
    pub participant: Option<(bool, bool)>,
    pub domains: &'a [&'a str],
    pub tenants: &'a [&'a str],
    /// `ChatName`.
    pub name: &'a str,
}

impl<'a> Chat<'a> {
    /// A one-on-one chat from the user's office, without `ParticipantInfo`.
    pub(super) fn by(u: &'a User) -> Self {
        Chat {
            at: 0,
            user: u,
            op: "",
            ip: &u.office_ip,
            comm: "OneOnOne",
            members: &[],
            participant: None,
            domains: &[],
            tenants: &[],
            name: "",
        }
    }
}

/// A team-level Teams event (RecordType 25), e.g. TeamDeleted.
#[derive(Clone, Copy)]
pub(super) struct Team<'a> {
    pub at: i64,
    pub user: &'a User,
    pub op: &'a str,
    pub ip: &'a str,
    pub team: &'a str,
}

impl<'a> Team<'a> {
    /// From the user's office.
    pub(super) fn by(u: &'a User) -> Self {
        Team {
            at: 0,
            user: u,
            op: "",
            ip: &u.office_ip,
            team: "",
        }
    }
}

/// MailItemsAccessed (RecordType 50), aggregated.
#[derive(Clone, Copy)]
pub(super) struct Access<'a> {
    pub at: i64,
    pub user: &'a User,
    pub ip: &'a str,
    /// `OperationCount`.
    pub count: i64,
    pub throttled: bool,
    /// The client application id.
    pub app: &'a str,
}

impl<'a> Access<'a> {
    /// One item read in Outlook at the user's office.
    pub(super) fn by(u: &'a User) -> Self {
        Access {
            at: 0,
            user: u,
            ip: &u.office_ip,
            count: 1,
            throttled: false,
            app: APP_OFFICE,
        }
    }
}

/// SearchQueryPerformed (SharePoint).
#[derive(Clone, Copy)]
pub(super) struct Search<'a> {
    pub at: i64,
    pub user: &'a User,
    pub ip: &'a str,
    pub query: &'a str,
}

impl<'a> Search<'a> {
    /// From the user's office.
    pub(super) fn by(u: &'a User) -> Self {
        Search {
            at: 0,
            user: u,
            ip: &u.office_ip,
            query: "",
        }
    }
}

/// A tenant sharing-policy change (SharingPolicyChanged) by an admin at the office.
#[derive(Clone, Copy)]
pub(super) struct Policy<'a> {
    pub at: i64,
    pub by: &'a User,
    pub setting: &'a str,
    pub old: &'a str,
    pub new: &'a str,
}

impl<'a> Policy<'a> {
    pub(super) fn by(u: &'a User) -> Self {
        Policy {
            at: 0,
            by: u,
            setting: "",
            old: "",
            new: "",
        }
    }
}

/// Where the stories are told: the tenant, the seed, the history and the random streams.
pub(super) struct Scene<'t> {
    t: &'t Tenant,
    seed: u64,
    h0: DateTime<Utc>,
    span: i64,
    /// Start of the current story.
    base: DateTime<Utc>,
    /// The current story's stream.
    r: Rng,
    /// Side streams by salt, created on first use and continued across stories.
    side: Vec<(u64, Rng)>,
    pub(super) out: Vec<Story>,
}

impl<'t> Scene<'t> {
    /// `h0` is the start of the history, `anchor` its end.
    pub(super) fn new(t: &'t Tenant, seed: u64, h0: DateTime<Utc>, anchor: DateTime<Utc>) -> Self {
        Scene {
            t,
            seed,
            h0,
            span: (anchor - h0).num_seconds().max(3600),
            base: h0,
            r: Rng::new(mix(&[seed, 0x5704])),
            side: Vec::new(),
            out: Vec::new(),
        }
    }

    pub(super) fn tenant(&self) -> &'t Tenant {
        self.t
    }

    /// The user with this index (wrapping around small tenants).
    pub(super) fn user(&self, i: usize) -> &'t User {
        &self.t.users[i % self.t.users.len()]
    }

    /// Starts the next story at the fraction `frac` of the history span, with a random
    /// stream of its own.
    pub(super) fn place(&mut self, frac: f64) {
        self.base = self.h0 + Duration::seconds((self.span as f64 * frac) as i64);
        self.r = Rng::new(mix(&[self.seed, 0x5704, (frac * 1000.0) as u64]));
    }

    /// Makes the plot's records (in the order written; they come out in time order) and
    /// adds the story.
    pub(super) fn tell(&mut self, plot: Plot) {
        let mut made: Vec<(i64, String)> = Vec::with_capacity(plot.records.len());
        for rec in &plot.records {
            let id = self.r.guid();
            let time = self.base + Duration::seconds(rec.secs);
            let r = match rec.side {
                Some(salt) => side_stream(&mut self.side, self.seed, salt),
                None => &mut self.r,
            };
            let g = Gen {
                t: self.t,
                r,
                time,
                id: &id,
            };
            made.push((rec.secs, render(g, &rec.kind)));
        }
        made.sort_by_key(|(secs, _)| *secs);
        let mut records = Vec::with_capacity(made.len());
        let mut operations = Vec::new();
        for (_, json) in made {
            let v: serde_json::Value =
                serde_json::from_str(&json).unwrap_or(serde_json::Value::Null);
            let Ok(h) = RecordHeader::from_value(&v) else {
                continue;
            };
            if !operations.contains(&h.operation) {
                operations.push(h.operation.clone());
            }
            records.push(StoryRecord {
                id: h.id.clone(),
                content_type: h.content_type(),
                creation_time: h.creation_time,
                json,
            });
        }
        self.out.push(Story {
            name: plot.name,
            summary: plot.summary,
            near_miss: plot.near_miss,
            fires: plot.fires.to_vec(),
            must_not_fire: plot.must_not_fire.to_vec(),
            user: plot.about.to_string(),
            operations,
            records,
        });
    }
}

fn side_stream(side: &mut Vec<(u64, Rng)>, seed: u64, salt: u64) -> &mut Rng {
    let i = match side.iter().position(|(s, _)| *s == salt) {
        Some(i) => i,
        None => {
            side.push((salt, Rng::new(mix(&[seed, salt]))));
            side.len() - 1
        }
    };
    &mut side[i].1
}

/// The record text of one row.
fn render(g: Gen<'_>, kind: &Kind) -> String {
    let t = g.t;
    match *kind {
        Kind::Login(l) => {
            let (user_id, user_key, user_type) = match l.user {
                Some(u) => (u.upn.as_str(), u.oid.as_str(), 0),
                None => ("Not Available", "Not Available", 4),
            };
            let s = SignIn {
                user_id,
                user_key,
                user_type,
                failed: l.error.is_some(),
                result_status: l.status,
                ip: l.ip,
                ua: l.ua,
                request_type: l.request,
                detail: l.detail,
                error: l.error,
                app_id: l.app,
                rt_as_string: l.rt_as_string,
            };
            signin(t, g.r, g.time, g.id, &s)
        }
        Kind::Exo(e) => {
            const SYSTEM: &str = "NT AUTHORITY\\SYSTEM (Microsoft.Exchange.ServiceHost)";
            // An admin's ClientIP carries a source port, here one that varies with the
            // row's offset; the service host has no ClientIP.
            let (user, user_key, user_type, ip) = match e.by {
                Some(u) => (
                    u.upn.as_str(),
                    u.puid.as_str(),
                    2,
                    format!("{}:{}", u.office_ip, 50000 + e.at.rem_euclid(9999)),
                ),
                None => (SYSTEM, SYSTEM, 4, String::new()),
            };
            let a = ExAdmin {
                cmdlet: e.cmdlet,
                user,
                user_key,
                user_type,
                object_id: e.object,
                params: e.params,
                params_as_string: e.params_as_string,
                ip: &ip,
                result: "True",
            };
            exchange_admin(t, g.r, g.time, g.id, &a)
        }
        Kind::Scc(s) => scc_cmdlet(g, s.cmdlet, s.by, s.object, s.params, &s.by.office_ip),
        Kind::Aad(a) => aad_directory(g, a.op, a.by, a.target, a.mods, &[]),
        Kind::File(f) => {
            let site_url = site_url(t, f.user, f.place);
            sp_file(t, g.r, g.time, g.id, &sp_item(&f, 6, &site_url))
        }
        Kind::Share(s) => {
            let site_url = site_url(t, s.user, s.place);
            let f = File {
                user: s.user,
                at: s.at,
                op: s.op,
                place: s.place,
                file: s.file,
                ua: UA_BROWSER,
                ip: &s.user.office_ip,
            };
            sp_share(
                g,
                &sp_item(&f, 14, &site_url),
                s.target,
                s.target_type,
                "Contribute",
            )
        }
        Kind::Mail(m) => {
            let rec = mailbox_item(g, m.op, m.user, &m.user.office_ip, m.subject, m.attachments);
            if m.properties.is_empty() {
                rec
            } else {
                // The builder writes no OperationProperties: append them as the record's
                // last field, before its closing brace.
                let mut rec = rec[..rec.len() - 1].to_string();
                rec.push_str(",\"OperationProperties\":");
                rec.push_str(&nv(m.properties));
                rec.push('}');
                rec
            }
        }
        Kind::Ome(o) => ome(g, o.op, &o.sender.upn, o.recipient, o.attachment, o.subject),
        Kind::Alert(a) => scc_alert(g, a.op, a.name, a.severity, a.category, a.about),
        Kind::Chat(c) => {
            let chat = TeamsChat {
                op: c.op,
                user: c.user,
                ip: c.ip,
                comm: c.comm,
                members: c.members,
                participant: c.participant,
                domains: c.domains,
                tenants: c.tenants,
                chat_name: c.name,
            };
            teams_chat(t, g.r, g.time, g.id, &chat)
        }
        Kind::Team(m) => teams_team(g, m.op, m.user, m.ip, m.team),
        Kind::Access(a) => mail_items_accessed(g, a.user, a.ip, a.count, a.throttled, a.app),
        Kind::Search(s) => sp_search(t, g.r, g.time, g.id, s.user, s.ip, s.query),
        Kind::Policy(p) => sp_policy(g, p.by, &p.by.office_ip, p.setting, p.old, p.new),
    }
}

fn site_url(t: &Tenant, u: &User, place: Place) -> String {
    match place {
        Place::OneDrive => t.onedrive(u),
        Place::Site(i) => t.sites[i % t.sites.len()].url.clone(),
    }
}

fn sp_item<'a>(f: &File<'a>, rt: i64, site_url: &'a str) -> SpFile<'a> {
    let onedrive = matches!(f.place, Place::OneDrive);
    SpFile {
        op: f.op,
        rt,
        workload: if onedrive { "OneDrive" } else { "SharePoint" },
        user: f.user,
        ip: f.ip,
        ua: f.ua,
        site_url,
        folder: if onedrive {
            "Documents"
        } else {
            "Shared Documents"
        },
        file: f.file,
        item_type: "File",
    }
}
