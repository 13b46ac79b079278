//! Security & Compliance stories: audit policy removal, Insider Risk policy changes, PST
//! export and Microsoft's own alerts, each with its near-miss.

use super::scene::*;

/// The side stream of Microsoft's alerts (see [`Row::on_side`]).
const ALERTS: u64 = 0xA1;

pub(super) fn audit_tamper_scc(s: &mut Scene) {
    let admin = s.user(0);
    s.tell(Plot {
        name: "audit_tamper_scc",
        near_miss: false,
        fires: &["exchange_auditing_disabled", "s2.2#4"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "Remove-AuditConfigurationPolicy in the Security & Compliance shape (RecordType 18, Workload SecurityComplianceCenter, Parameters a string); the faithful guide query (Workload Exchange) misses it.",
        records: rows![Scc {
            cmdlet: "Remove-AuditConfigurationPolicy",
            object: "a415dcce-19a0-4153-b137-eb6fd67995b5",
            params: r#"-Identity "a415dcce-19a0-4153-b137-eb6fd67995b5" -Confirm "False""#,
            ..Scc::by(admin)
        }],
    });
}

pub(super) fn insider_risk_policy_changes(s: &mut Scene) {
    let admin = s.user(2);
    s.tell(Plot {
        name: "insider_risk_policy_changes",
        near_miss: false,
        fires: &["insider_risk_policies"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "An admin creates, disables and removes Insider Risk policies (S&C cmdlets).",
        records: rows![
            Scc {
                cmdlet: "New-InsiderRiskPolicy",
                object: "Data leaks",
                params: r#"-Name "Data leaks" -InsiderRiskScenario "LeakOfIP""#,
                ..Scc::by(admin)
            },
            Scc {
                at: 300,
                cmdlet: "Set-InsiderRiskPolicy",
                object: "Data leaks",
                params: r#"-Identity "Data leaks" -Enabled "False""#,
                ..Scc::by(admin)
            },
            Scc {
                at: 600,
                cmdlet: "Remove-InsiderRiskPolicy",
                object: "Departing users",
                params: r#"-Identity "Departing users" -Confirm "False""#,
                ..Scc::by(admin)
            },
        ],
    });
}

pub(super) fn insider_risk_entity_list(s: &mut Scene) {
    let admin = s.user(2);
    s.tell(Plot {
        name: "insider_risk_entity_list",
        near_miss: false,
        fires: &["insider_risk_policies"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "New-InsiderRiskEntityList: the corrected rule (insider_risk_policy_changes) fires, the faithful has(\"InsiderRiskPolicy\") does not.",
        records: rows![Scc {
            cmdlet: "New-InsiderRiskEntityList",
            object: "Priority users",
            params: r#"-Name "Priority users" -Type "CustomPriorityUserGroup""#,
            ..Scc::by(admin)
        }],
    });
}

pub(super) fn insider_risk_near_miss(s: &mut Scene) {
    let admin = s.user(2);
    s.tell(Plot {
        name: "insider_risk_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["insider_risk_policies", "s2.2#25"],
        about: &admin.upn,
        summary: "Get-InsiderRiskPolicy and an InsiderRiskManagement alert update: no policy change.",
        records: rows![
            Scc {
                cmdlet: "Get-InsiderRiskPolicy",
                object: "Data leaks",
                params: r#"-Identity "Data leaks""#,
                ..Scc::by(admin)
            },
            Alert {
                at: 120,
                op: "AlertUpdated",
                name: "Insider risk alert triaged",
                severity: "Low",
                category: "InsiderRiskManagement",
                ..Alert::about(&admin.upn)
            },
        ],
    });
}

pub(super) fn pst_export(s: &mut Scene) {
    let admin = s.user(1);
    s.tell(Plot {
        name: "pst_export",
        near_miss: false,
        fires: &["s2.2#24"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "A compliance search of all mailboxes exported as PST.",
        records: rows![Scc {
            cmdlet: "New-ComplianceSearchAction",
            object: "All mailboxes_Export",
            params: r#"-SearchName "All mailboxes" -Export -Format "FxStream" -ExchangeArchiveFormat "PerUserPst" -Scope "IndexedItemsOnly""#,
            ..Scc::by(admin)
        }],
    });
}

pub(super) fn pst_near_miss(s: &mut Scene) {
    let admin = s.user(1);
    s.tell(Plot {
        name: "pst_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#24"],
        about: &admin.upn,
        summary: "A compliance search preview.",
        records: rows![Scc {
            cmdlet: "New-ComplianceSearchAction",
            object: "Legal hold_Preview",
            params: r#"-SearchName "Legal hold" -Preview"#,
            ..Scc::by(admin)
        }],
    });
}

/// Microsoft's alert about the forwarding of `mail_forwarding`.
const FORWARDING_ALERT: &str = "Suspicious email forwarding activity";

pub(super) fn microsoft_alerts(s: &mut Scene) {
    let v = s.user(12);
    s.tell(Plot {
        name: "microsoft_alerts",
        near_miss: false,
        fires: &["s2.2#25"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Microsoft's own alert about the forwarding (Data is a JSON string, RecordType a string).",
        records: rows![
            Alert {
                op: "AlertTriggered",
                name: FORWARDING_ALERT,
                ..Alert::about(&v.upn)
            }
            .on_side(ALERTS),
            Alert {
                at: 5,
                op: "AlertEntityGenerated",
                name: FORWARDING_ALERT,
                ..Alert::about(&v.upn)
            }
            .on_side(ALERTS),
        ],
    });
}

pub(super) fn alert_near_miss(s: &mut Scene) {
    let v = s.user(12);
    s.tell(Plot {
        name: "alert_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#25"],
        about: &v.upn,
        summary: "The same alert updated (AlertUpdated is not forwarded).",
        records: rows![
            Alert {
                op: "AlertUpdated",
                name: FORWARDING_ALERT,
                ..Alert::about(&v.upn)
            }
            .on_side(ALERTS),
        ],
    });
}
