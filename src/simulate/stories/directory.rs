//! Entra directory stories: MFA removed, a privileged role granted, a federated domain
//! and an illicit consent, each with its near-miss.

use super::scene::*;

/// The side stream of the consent records (see [`Row::on_side`]).
const CONSENT: u64 = 0xC0;

pub(super) fn mfa_removed(s: &mut Scene) {
    let (v, admin) = (s.user(13), s.user(1));
    s.tell(Plot {
        name: "mfa_removed",
        near_miss: false,
        fires: &["s2.2#6"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "An admin clears a user's MFA methods (StrongAuthenticationMethod → \"[]\", values are JSON strings) and disables strong auth.",
        records: rows![
            Aad {
                op: "Update user.",
                target: &v.upn,
                mods: &[
                    (
                        "StrongAuthenticationMethod",
                        r#"[{"MethodType":6,"Default":true},{"MethodType":7,"Default":false}]"#,
                        "[]",
                    ),
                    ("Included Updated Properties", "", "StrongAuthenticationMethod"),
                ],
                ..Aad::by(admin)
            },
            Aad {
                at: 30,
                op: "Disable Strong Authentication.",
                target: &v.upn,
                ..Aad::by(admin)
            },
        ],
    });
}

pub(super) fn mfa_near_miss(s: &mut Scene) {
    let v = s.user(13);
    s.tell(Plot {
        name: "mfa_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#6"],
        about: &v.upn,
        summary: "A user registers MFA (from [] to a method).",
        records: rows![Aad {
            op: "Update user.",
            target: &v.upn,
            mods: &[
                (
                    "StrongAuthenticationMethod",
                    "[]",
                    r#"[{"MethodType":6,"Default":true}]"#
                ),
                (
                    "Included Updated Properties",
                    "",
                    "StrongAuthenticationMethod"
                ),
            ],
            ..Aad::by(v)
        }],
    });
}

pub(super) fn global_admin_granted(s: &mut Scene) {
    let (v, admin) = (s.user(14), s.user(1));
    s.tell(Plot {
        name: "global_admin_granted",
        near_miss: false,
        fires: &["s2.2#8"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Global Administrator granted to a regular user.",
        records: rows![Aad {
            op: "Add member to role.",
            target: &v.upn,
            mods: &[
                ("Role.ObjectID", "", "62e90394-69f5-4237-9190-012177145e10"),
                ("Role.DisplayName", "", "Global Administrator"),
                ("Role.WellKnownObjectName", "", "TenantAdmins"),
            ],
            ..Aad::by(admin)
        }],
    });
}

pub(super) fn role_near_miss(s: &mut Scene) {
    let (v, admin) = (s.user(14), s.user(1));
    s.tell(Plot {
        name: "role_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#8"],
        about: &v.upn,
        summary: "Reports Reader granted: not privileged.",
        records: rows![Aad {
            op: "Add member to role.",
            target: &v.upn,
            mods: &[("Role.DisplayName", "", "Reports Reader")],
            ..Aad::by(admin)
        }],
    });
}

pub(super) fn federated_domain(s: &mut Scene) {
    let admin = s.user(1);
    let sso = format!("{}-sso.com", s.tenant().name.to_ascii_lowercase());
    s.tell(Plot {
        name: "federated_domain",
        near_miss: false,
        fires: &["s2.2#10"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "A federated domain is added and switched to federated authentication.",
        records: rows![
            Exo {
                cmdlet: "Add-FederatedDomain",
                object: &sso,
                params: &[("DomainName", &sso)],
                ..Exo::by(admin)
            },
            Aad {
                at: 60,
                op: "Set domain authentication.",
                target: &sso,
                mods: &[("LiveType", "Managed", "Federated")],
                ..Aad::by(admin)
            },
        ],
    });
}

pub(super) fn domain_near_miss(s: &mut Scene) {
    let admin = s.user(1);
    s.tell(Plot {
        name: "domain_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#10"],
        about: &admin.upn,
        summary: "A managed subdomain is verified.",
        records: rows![Aad {
            op: "Verify domain.",
            target: &format!("mail.{}", s.tenant().domain),
            ..Aad::by(admin)
        }],
    });
}

pub(super) fn illicit_consent(s: &mut Scene) {
    let v = s.user(16);
    s.tell(Plot {
        name: "illicit_consent",
        near_miss: false,
        fires: &["s2.2#11"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "A user consents to an unknown app asking Mail.Read, Mail.Send and offline_access.",
        records: rows![
            Aad {
                op: "Consent to application.",
                target: "MailSync Pro",
                mods: &[
                    ("ConsentContext.IsAdminConsent", "", "False"),
                    ("ConsentContext.OnBehalfOfAll", "", "False"),
                    (
                        "ConsentAction.Permissions",
                        "",
                        "[] => [[Id: x, ClientId: 7b2f1c9e-0000-4d6a-9a51-3e2d1c0b9a87, PrincipalId: y, ResourceId: z, ConsentType: Principal, Scope:  Mail.Read Mail.Send offline_access User.Read]]; ",
                    ),
                ],
                ..Aad::by(v)
            }
            .on_side(CONSENT),
        ],
    });
}

pub(super) fn consent_near_miss(s: &mut Scene) {
    let admin = s.user(0);
    s.tell(Plot {
        name: "consent_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#11"],
        about: &admin.upn,
        summary: "An admin consents for the organisation to a known app.",
        records: rows![
            Aad {
                op: "Consent to application.",
                target: "Zoom",
                mods: &[
                    ("ConsentContext.IsAdminConsent", "", "True"),
                    ("ConsentContext.OnBehalfOfAll", "", "True"),
                    ("ConsentAction.Permissions", "", "Scope: User.Read"),
                ],
                ..Aad::by(admin)
            }
            .on_side(CONSENT),
        ],
    });
}
