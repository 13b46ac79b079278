//! Exchange stories: the encrypted-message portal, audit switches, forwarding and inbox
//! rules, transport rules, email security settings, mailbox delegation, bulk mail access
//! and deleted MFA notifications, each with its near-miss.

use super::scene::*;

pub(super) fn ome_attachment_download(s: &mut Scene) {
    let sender = s.user(8);
    s.tell(Plot {
        name: "ome_attachment_download",
        near_miss: false,
        fires: &["email_attachments"],
        must_not_fire: &[],
        about: &sender.upn,
        summary: "An external recipient downloads Q2-payroll.xlsx from the encrypted-message portal (RecordType 154; UserId is the sender, Recipient the downloader).",
        records: rows![Ome {
            op: "AttachmentDownload",
            recipient: "someone@gmail.com",
            attachment: Some("Q2-payroll.xlsx"),
            subject: "Payroll review",
            ..Ome::by(sender)
        }],
    });
}

pub(super) fn ome_near_miss(s: &mut Scene) {
    let sender = s.user(8);
    s.tell(Plot {
        name: "ome_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["email_attachments"],
        about: &sender.upn,
        summary: "AttachmentReview in the portal and a mailbox Create with Item.Attachments: no download.",
        records: rows![
            Ome {
                op: "AttachmentReview",
                recipient: "someone@gmail.com",
                attachment: Some("Q2-payroll.xlsx"),
                subject: "Payroll review",
                ..Ome::by(sender)
            },
            Mail {
                at: 60,
                op: "Create",
                subject: "Payroll review",
                attachments: Some("Q2-payroll.xlsx (48213b)"),
                ..Mail::by(sender)
            },
        ],
    });
}

pub(super) fn audit_tamper_exchange_shape(s: &mut Scene) {
    let admin = s.user(0);
    let policy = "a415dcce-19a0-4153-b137-eb6fd67995b5";
    s.tell(Plot {
        name: "audit_tamper_exchange_shape",
        near_miss: false,
        fires: &["exchange_auditing_disabled", "s2.2#4"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "Remove-AuditConfigurationPolicy in the Exchange admin shape (RecordType 1, Workload Exchange, Parameters array): the faithful guide query fires.",
        records: rows![Exo {
            cmdlet: "Remove-AuditConfigurationPolicy",
            object: policy,
            params: &[("Identity", policy), ("Confirm", "False")],
            ..Exo::by(admin)
        }],
    });
}

pub(super) fn audit_disabled_exchange(s: &mut Scene) {
    let (admin, v) = (s.user(1), s.user(3));
    let onms = &s.tenant().onms;
    let settings = format!("{onms}\\Admin Audit Log Settings");
    s.tell(Plot {
        name: "audit_disabled_exchange",
        near_miss: false,
        fires: &["s2.2#4"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "Exchange-side audit switches: UnifiedAuditLogIngestionEnabled False, AdminAuditLogEnabled False (Parameters as a string), mailbox audit bypass, AuditEnabled False, AuditDisabled True.",
        records: rows![
            Exo {
                cmdlet: "Set-AdminAuditLogConfig",
                object: &settings,
                params: &[
                    ("Identity", "Admin Audit Log Settings"),
                    ("UnifiedAuditLogIngestionEnabled", "False"),
                ],
                ..Exo::by(admin)
            },
            Exo {
                at: 60,
                cmdlet: "Set-AdminAuditLogConfig",
                object: &settings,
                params: &[("AdminAuditLogEnabled", "False")],
                params_as_string: true,
                ..Exo::by(admin)
            },
            Exo {
                at: 120,
                cmdlet: "Set-MailboxAuditBypassAssociation",
                object: &v.upn,
                params: &[("Identity", &v.upn), ("AuditBypassEnabled", "True")],
                ..Exo::by(admin)
            },
            Exo {
                at: 180,
                cmdlet: "Set-Mailbox",
                object: &v.upn,
                params: &[("Identity", &v.upn), ("AuditEnabled", "False")],
                ..Exo::by(admin)
            },
            Exo {
                at: 240,
                cmdlet: "Set-OrganizationConfig",
                object: onms,
                params: &[("AuditDisabled", "True")],
                ..Exo::by(admin)
            },
        ],
    });
}

pub(super) fn audit_near_miss(s: &mut Scene) {
    let (admin, v) = (s.user(1), s.user(3));
    s.tell(Plot {
        name: "audit_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["exchange_auditing_disabled", "s2.2#4"],
        about: &admin.upn,
        summary: "System install of the audit config and re-enabling audit: must not fire.",
        records: rows![
            Exo {
                cmdlet: "Install-AdminAuditLogConfig",
                object: "Admin Audit Log Settings",
                params: &[
                    ("Identity", "Admin Audit Log Settings"),
                    ("UnifiedAuditLogIngestionEnabled", "True"),
                ],
                ..Exo::system()
            },
            Exo {
                at: 60,
                cmdlet: "Set-AdminAuditLogConfig",
                object: "Admin Audit Log Settings",
                params: &[("UnifiedAuditLogIngestionEnabled", "True")],
                ..Exo::by(admin)
            },
            Exo {
                at: 120,
                cmdlet: "Set-Mailbox",
                object: &v.upn,
                params: &[("Identity", &v.upn), ("AuditEnabled", "True")],
                ..Exo::by(admin)
            },
        ],
    });
}

pub(super) fn mail_forwarding(s: &mut Scene) {
    let (v, admin) = (s.user(12), s.user(1));
    s.tell(Plot {
        name: "mail_forwarding",
        near_miss: false,
        fires: &["s2.2#1"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Inbox rule forwarding to gmail, admin sets ForwardingSmtpAddress to protonmail without keeping a copy, and an Outlook-client UpdateInboxRules forward.",
        records: rows![
            Exo {
                cmdlet: "New-InboxRule",
                object: &format!("{}\\Sync", v.upn),
                params: &[
                    ("Name", "Sync"),
                    ("ForwardTo", "j.doe@gmail.com"),
                    ("StopProcessingRules", "True"),
                ],
                ..Exo::by(v)
            },
            Exo {
                at: 120,
                cmdlet: "Set-Mailbox",
                object: &v.upn,
                params: &[
                    ("Identity", &v.upn),
                    ("ForwardingSmtpAddress", "smtp:someone@protonmail.com"),
                    ("DeliverToMailboxAndForward", "False"),
                ],
                ..Exo::by(admin)
            },
            Mail {
                at: 240,
                op: "UpdateInboxRules",
                properties: &[
                    (
                        "RuleActions",
                        r#"[{"Actions":[{"Recipients":["j.doe@gmail.com"]}],"ActionType":"ForwardToRecipientsAction"}]"#,
                    ),
                    ("RuleName", "Sync2"),
                ],
                ..Mail::by(v)
            },
        ],
    });
}

pub(super) fn forwarding_near_miss(s: &mut Scene) {
    let (v, colleague, admin) = (s.user(12), s.user(13), s.user(1));
    s.tell(Plot {
        name: "forwarding_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#1", "s2.2#2"],
        about: &v.upn,
        summary: "Forwarding to a colleague in the tenant's own domain and a move-to-folder rule.",
        records: rows![
            Exo {
                cmdlet: "Set-Mailbox",
                object: &v.upn,
                params: &[
                    ("Identity", &v.upn),
                    ("ForwardingSmtpAddress", &format!("smtp:{}", colleague.upn)),
                    ("DeliverToMailboxAndForward", "True"),
                ],
                ..Exo::by(admin)
            },
            Exo {
                at: 60,
                cmdlet: "New-InboxRule",
                object: &format!("{}\\Newsletters", v.upn),
                params: &[
                    ("Name", "Newsletters"),
                    ("SubjectContainsWords", "newsletter"),
                    ("MoveToFolder", "Newsletters"),
                ],
                ..Exo::by(v)
            },
        ],
    });
}

pub(super) fn evasive_inbox_rule(s: &mut Scene) {
    let v = s.user(12);
    s.tell(Plot {
        name: "evasive_inbox_rule",
        near_miss: false,
        fires: &["s2.2#2"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "A punctuation-named inbox rule deleting finance mails.",
        records: rows![Exo {
            cmdlet: "New-InboxRule",
            object: &format!("{}\\.", v.upn),
            params: &[
                ("Name", "."),
                ("SubjectContainsWords", "invoice;payment;wire transfer"),
                ("DeleteMessage", "True"),
                ("MarkAsRead", "True"),
            ],
            ..Exo::by(v)
        }],
    });
}

pub(super) fn inbox_rule_near_miss(s: &mut Scene) {
    let v = s.user(12);
    s.tell(Plot {
        name: "inbox_rule_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#1", "s2.2#2"],
        about: &v.upn,
        summary: "A tidy rule moving receipts to a folder.",
        records: rows![Exo {
            cmdlet: "New-InboxRule",
            object: &format!("{}\\Receipts", v.upn),
            params: &[
                ("Name", "Receipts"),
                ("SubjectContainsWords", "receipt"),
                ("MoveToFolder", "Receipts"),
            ],
            ..Exo::by(v)
        }],
    });
}

pub(super) fn transport_rule_bcc(s: &mut Scene) {
    let admin = s.user(1);
    s.tell(Plot {
        name: "transport_rule_bcc",
        near_miss: false,
        fires: &["s2.2#3"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "A transport rule BCCing outbound mail to an external mailbox.",
        records: rows![Exo {
            cmdlet: "New-TransportRule",
            object: "Archive copy",
            params: &[
                ("Name", "Archive copy"),
                ("SentToScope", "NotInOrganization"),
                ("BlindCopyTo", "archive@protonmail.com"),
            ],
            ..Exo::by(admin)
        }],
    });
}

pub(super) fn transport_near_miss(s: &mut Scene) {
    let admin = s.user(1);
    s.tell(Plot {
        name: "transport_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#3"],
        about: &admin.upn,
        summary: "Set-TransportConfig (not a rule).",
        records: rows![Exo {
            cmdlet: "Set-TransportConfig",
            object: &s.tenant().onms,
            params: &[("MaxSendSize", "35 MB")],
            ..Exo::by(admin)
        }],
    });
}

pub(super) fn email_security_tampering(s: &mut Scene) {
    let admin = s.user(1);
    let domain = &s.tenant().domain;
    s.tell(Plot {
        name: "email_security_tampering",
        near_miss: false,
        fires: &["s2.2#5"],
        must_not_fire: &[],
        about: &admin.upn,
        summary: "Anti-phish removed, Safe Links and malware rules disabled, DKIM signing off.",
        records: rows![
            Exo {
                cmdlet: "Remove-AntiPhishPolicy",
                object: "Office365 AntiPhish Default",
                params: &[
                    ("Identity", "Strict Preset Security Policy"),
                    ("Confirm", "False")
                ],
                ..Exo::by(admin)
            },
            Exo {
                at: 60,
                cmdlet: "Disable-SafeLinksRule",
                object: "Safe Links Rule",
                params: &[("Identity", "Safe Links Rule")],
                ..Exo::by(admin)
            },
            Exo {
                at: 120,
                cmdlet: "Set-DkimSigningConfig",
                object: domain,
                params: &[("Identity", domain), ("Enabled", "False")],
                ..Exo::by(admin)
            },
            Exo {
                at: 180,
                cmdlet: "Disable-MalwareFilterRule",
                object: "Default malware rule",
                params: &[("Identity", "Default malware rule")],
                ..Exo::by(admin)
            },
        ],
    });
}

pub(super) fn email_security_near_miss(s: &mut Scene) {
    let admin = s.user(1);
    let domain = &s.tenant().domain;
    s.tell(Plot {
        name: "email_security_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#5"],
        about: &admin.upn,
        summary: "DKIM enabled and a new anti-phish policy: hardening, not tampering.",
        records: rows![
            Exo {
                cmdlet: "Set-DkimSigningConfig",
                object: domain,
                params: &[("Identity", domain), ("Enabled", "True")],
                ..Exo::by(admin)
            },
            Exo {
                at: 60,
                cmdlet: "New-AntiPhishPolicy",
                object: "Finance strict",
                params: &[
                    ("Name", "Finance strict"),
                    ("EnableMailboxIntelligence", "True")
                ],
                ..Exo::by(admin)
            },
        ],
    });
}

pub(super) fn mailbox_delegation(s: &mut Scene) {
    let (ceo, v, admin) = (s.user(0), s.user(14), s.user(1));
    s.tell(Plot {
        name: "mailbox_delegation",
        near_miss: false,
        fires: &["s2.2#9"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "FullAccess and SendAs on the CEO mailbox, plus ApplicationImpersonation.",
        records: rows![
            Exo {
                cmdlet: "Add-MailboxPermission",
                object: &ceo.upn,
                params: &[
                    ("Identity", &ceo.upn),
                    ("User", &v.upn),
                    ("AccessRights", "FullAccess"),
                    ("InheritanceType", "All"),
                ],
                ..Exo::by(admin)
            },
            Exo {
                at: 60,
                cmdlet: "Add-RecipientPermission",
                object: &ceo.upn,
                params: &[
                    ("Identity", &ceo.upn),
                    ("Trustee", &v.upn),
                    ("AccessRights", "SendAs"),
                ],
                ..Exo::by(admin)
            },
            Exo {
                at: 120,
                cmdlet: "New-ManagementRoleAssignment",
                object: "ApplicationImpersonation-svc",
                params: &[("Role", "ApplicationImpersonation"), ("User", &v.upn)],
                ..Exo::by(admin)
            },
        ],
    });
}

pub(super) fn delegation_near_miss(s: &mut Scene) {
    let (v, ceo) = (s.user(14), s.user(0));
    let calendar = format!("{}:\\Calendar", v.upn);
    s.tell(Plot {
        name: "delegation_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#9"],
        about: &v.upn,
        summary: "Calendar Reviewer permission for a colleague.",
        records: rows![Exo {
            cmdlet: "Add-MailboxFolderPermission",
            object: &calendar,
            params: &[
                ("Identity", &calendar),
                ("User", &ceo.upn),
                ("AccessRights", "Reviewer"),
            ],
            ..Exo::by(v)
        }],
    });
}

pub(super) fn mail_items_accessed_bulk(s: &mut Scene) {
    let v = s.user(27);
    s.tell(Plot {
        name: "mail_items_accessed_bulk",
        near_miss: false,
        fires: &["s2.2#21"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "350 mail items bound in one aggregate, throttled, by an unusual client app.",
        records: rows![Access {
            ip: "203.0.113.160",
            count: 350,
            throttled: true,
            app: "3a2b8c1e-7f6d-4e5c-9b8a-1f2e3d4c5b6a",
            ..Access::by(v)
        }],
    });
}

pub(super) fn mail_access_near_miss(s: &mut Scene) {
    let v = s.user(27);
    s.tell(Plot {
        name: "mail_access_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#21"],
        about: &v.upn,
        summary: "Three items read in Outlook.",
        records: rows![Access {
            count: 3,
            ..Access::by(v)
        }],
    });
}

pub(super) fn mfa_mail_deleted(s: &mut Scene) {
    let v = s.user(28);
    s.tell(Plot {
        name: "mfa_mail_deleted",
        near_miss: false,
        fires: &["s2.2#22"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Notification mails about a new MFA method and a new device are deleted right away.",
        records: rows![
            Mail {
                op: "SoftDelete",
                subject: "You added a new sign-in method to your account",
                ..Mail::by(v)
            },
            Mail {
                at: 20,
                op: "HardDelete",
                subject: "New device registered: Windows 11 (Chrome)",
                ..Mail::by(v)
            },
        ],
    });
}

pub(super) fn mfa_mail_near_miss(s: &mut Scene) {
    let v = s.user(28);
    s.tell(Plot {
        name: "mfa_mail_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#22"],
        about: &v.upn,
        summary: "An ordinary mail deleted.",
        records: rows![Mail {
            op: "SoftDelete",
            subject: "Lunch on Friday?",
            ..Mail::by(v)
        }],
    });
}
