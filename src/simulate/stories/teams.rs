//! Teams stories: a rogue "IT Help Desk" from another tenant and teams deleted in bulk;
//! a guest chat as the near-miss.

use super::super::factory::Member;
use super::scene::*;

pub(super) fn teams_rogue_helpdesk(s: &mut Scene) {
    let t = s.tenant();
    let v = s.user(10);
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
    let chat = Chat {
        ip: &v.home_ip,
        members: &members,
        participant: Some((true, false)),
        domains: &[&t.domain, "m365-support-team.onmicrosoft.com"],
        tenants: &[&t.id, evil],
        ..Chat::by(v)
    };
    s.tell(Plot {
        name: "teams_rogue_helpdesk",
        near_miss: false,
        fires: &["teams_exfiltration", "s2.2#20"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "A one-on-one chat from another tenant's \"IT Help Desk\" (HasForeignTenantUsers true).",
        records: rows![
            Chat {
                op: "ChatCreated",
                ..chat
            },
            Chat {
                at: 45,
                op: "MessageSent",
                ..chat
            },
        ],
    });
}

pub(super) fn teams_guest_chat_near_miss(s: &mut Scene) {
    let t = s.tenant();
    let v = s.user(10);
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
    s.tell(Plot {
        name: "teams_guest_chat_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["teams_exfiltration", "s2.2#20"],
        about: &v.upn,
        summary: "A guest chat: ParticipantInfo present with HasForeignTenantUsers false. The faithful guide query (isnotnull) fires; the corrected one must not.",
        records: rows![Chat {
            op: "ChatCreated",
            comm: "GroupChat",
            members: &members,
            participant: Some((false, true)),
            domains: &[&t.domain],
            tenants: &[&t.id],
            name: "Project review",
            ..Chat::by(v)
        }],
    });
}

pub(super) fn teams_mass_delete(s: &mut Scene) {
    let v = s.user(26);
    let records = (0..)
        .zip(["Project Phoenix", "Sales EMEA", "Board Members"])
        .map(|(i, team)| {
            let row = Team {
                at: i * 120,
                op: "TeamDeleted",
                ip: &v.home_ip,
                team,
                ..Team::by(v)
            };
            row.into()
        })
        .collect();
    s.tell(Plot {
        name: "teams_mass_delete",
        near_miss: false,
        fires: &["s2.2#19"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Three teams deleted in four minutes.",
        records,
    });
}
