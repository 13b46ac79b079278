//! SharePoint and OneDrive stories: a strategic file shared out, version history wiped,
//! mass and scripted downloads, anonymous sharing, malware and sensitive searches, each
//! with its near-miss.

use super::scene::*;

/// The side stream of the tenant sharing-policy change (see [`Row::on_side`]).
const POLICY: u64 = 0x5A;
/// The side stream of the searches.
const SEARCH: u64 = 0x5E;

pub(super) fn onedrive_strategic_share(s: &mut Scene) {
    let v = s.user(9);
    let file = "Strategic_Roadmap_FY26.pptx";
    s.tell(Plot {
        name: "onedrive_strategic_share",
        near_miss: false,
        fires: &["onedrive_exfiltration", "s2.2#17"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "A user shares Strategic_Roadmap_FY26.pptx from OneDrive with an external guest.",
        records: rows![
            Share {
                op: "SharingSet",
                file,
                target: "partner_fabrikam-partners.com#ext#@contoso.onmicrosoft.com",
                ..Share::by(v)
            },
            Share {
                at: 30,
                op: "SharingInvitationCreated",
                file,
                target: "partner@fabrikam-partners.com",
                ..Share::by(v)
            },
        ],
    });
}

pub(super) fn onedrive_share_near_miss(s: &mut Scene) {
    let (v, colleague) = (s.user(9), s.user(4));
    s.tell(Plot {
        name: "onedrive_share_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["onedrive_exfiltration", "s2.2#17"],
        about: &v.upn,
        summary: "Internal shares: a OneDrive photo and a file on the StrategicPlanning team site (the word is in the site URL only, and the workload is SharePoint).",
        records: rows![
            Share {
                op: "SharingSet",
                file: "Holiday photos.jpg",
                target: &colleague.upn,
                target_type: "Member",
                ..Share::by(v)
            },
            Share {
                at: 60,
                op: "SharingSet",
                place: Place::Site(11),
                file: "Agenda.docx",
                target: &colleague.upn,
                target_type: "Member",
                ..Share::by(v)
            },
        ],
    });
}

pub(super) fn version_history_wipe(s: &mut Scene) {
    let v = s.user(11);
    let ledgers: Vec<String> = (1..=30).map(|n| format!("Ledger {n:02}.xlsx")).collect();
    let recycled: Vec<Rec> = (0..)
        .zip(&ledgers)
        .map(|(i, file)| {
            let row = File {
                at: 60 + i * 15,
                op: "FileRecycled",
                file,
                ..File::by(v)
            };
            row.into()
        })
        .collect();
    s.tell(Plot {
        name: "version_history_wipe",
        near_miss: false,
        fires: &["sharepoint_data_destruction", "s2.2#19"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "FileVersionsAllDeleted on the Finance site, then 30 files recycled in under 10 minutes.",
        records: [
            rows![File {
                op: "FileVersionsAllDeleted",
                file: "Budget 2026.xlsx",
                ..File::by(v)
            }],
            recycled,
        ]
        .concat(),
    });
}

pub(super) fn version_history_wipe_onedrive(s: &mut Scene) {
    let v = s.user(11);
    s.tell(Plot {
        name: "version_history_wipe_onedrive",
        near_miss: false,
        fires: &["sharepoint_data_destruction", "s2.2#19"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "FileVersionsAllDeleted in OneDrive: the faithful guide query (Workload SharePoint) misses it; a corrected one covers both workloads.",
        records: rows![File {
            op: "FileVersionsAllDeleted",
            place: Place::OneDrive,
            file: "Cap table.xlsx",
            ..File::by(v)
        }],
    });
}

pub(super) fn deletion_near_miss(s: &mut Scene) {
    let w = s.user(12);
    let recycle = File {
        op: "FileRecycled",
        place: Place::Site(2),
        ..File::by(w)
    };
    s.tell(Plot {
        name: "deletion_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["sharepoint_data_destruction", "s2.2#19"],
        about: &w.upn,
        summary: "Three recycled files and one FileDeleted (old name): ordinary housekeeping.",
        records: rows![
            File {
                file: "Old price list.xlsx",
                ..recycle
            },
            File {
                at: 120,
                file: "Draft.docx",
                ..recycle
            },
            File {
                at: 240,
                place: Place::OneDrive,
                file: "Copy of notes.txt",
                ..recycle
            },
            File {
                at: 300,
                op: "FileDeleted",
                file: "Scratch.txt",
                ..recycle
            },
        ],
    });
}

pub(super) fn mass_download(s: &mut Scene) {
    let v = s.user(21);
    let contracts: Vec<String> = (1..=120).map(|n| format!("Contract {n:03}.pdf")).collect();
    let records = (0..)
        .zip(&contracts)
        .map(|(i, file)| {
            let row = File {
                at: i * 10,
                op: "FileDownloaded",
                file,
                ip: &v.home_ip,
                ..File::by(v)
            };
            row.into()
        })
        .collect();
    s.tell(Plot {
        name: "mass_download",
        near_miss: false,
        fires: &["s2.2#15"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "120 files downloaded from the Finance site in 20 minutes.",
        records,
    });
}

pub(super) fn mass_download_near_miss(s: &mut Scene) {
    let w = s.user(22);
    let decks: Vec<String> = (1..=12).map(|n| format!("Deck {n:02}.pptx")).collect();
    let records = (0..)
        .zip(&decks)
        .map(|(i, file)| {
            let row = File {
                at: i * 60,
                op: "FileDownloaded",
                place: Place::Site(2),
                file,
                ..File::by(w)
            };
            row.into()
        })
        .collect();
    s.tell(Plot {
        name: "mass_download_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#15"],
        about: &w.upn,
        summary: "12 downloads in 12 minutes.",
        records,
    });
}

pub(super) fn scripted_download(s: &mut Scene) {
    let v = s.user(23);
    let download = File {
        op: "FileDownloaded",
        place: Place::Site(5),
        ip: "203.0.113.150",
        ..File::by(v)
    };
    s.tell(Plot {
        name: "scripted_download",
        near_miss: false,
        fires: &["s2.2#16"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Downloads by PnP PowerShell and Windows PowerShell from a new IP.",
        records: rows![
            File {
                file: "Client list.xlsx",
                ua: "Microsoft.SharePoint.Client/16.0 PnPPowerShell/2.4.0",
                ..download
            },
            File {
                at: 60,
                file: "NDA template.docx",
                ua: "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.5129",
                ..download
            },
        ],
    });
}

pub(super) fn scripted_near_miss(s: &mut Scene) {
    let v = s.user(23);
    s.tell(Plot {
        name: "scripted_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#16"],
        about: &v.upn,
        summary: "The same download from a browser at the office.",
        records: rows![File {
            op: "FileDownloaded",
            place: Place::Site(5),
            file: "Client list.xlsx",
            ..File::by(v)
        }],
    });
}

pub(super) fn anonymous_sharing(s: &mut Scene) {
    let (v, admin) = (s.user(24), s.user(1));
    let export = "Customer export.csv";
    s.tell(Plot {
        name: "anonymous_sharing",
        near_miss: false,
        fires: &["s2.2#17"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "An Anyone link, a secure link to gmail, an external invitation, and the tenant sharing policy loosened.",
        // The policy change is made first (its Id comes first from the story's stream)
        // but comes out last, in time order.
        records: rows![
            Policy {
                at: 180,
                setting: "SharingCapability",
                old: "ExternalUserSharingOnly",
                new: "ExternalUserAndGuestSharing",
                ..Policy::by(admin)
            }
            .on_side(POLICY),
            Share {
                op: "AnonymousLinkCreated",
                file: export,
                target: "SharingLinks.7f06ab3a-bd98-41d3-a0b2-ad270d71e4d8.AnonymousEdit.32d45261-ee92-408d-9c93-bc4c8cfe98f6",
                target_type: "SharePointGroup",
                ..Share::by(v)
            },
            Share {
                at: 60,
                op: "AddedToSecureLink",
                file: export,
                target: "j.doe@gmail.com",
                ..Share::by(v)
            },
            Share {
                at: 120,
                op: "SharingInvitationCreated",
                place: Place::Site(2),
                file: "Price list.xlsx",
                target: "invoices@supplier-eu.com",
                ..Share::by(v)
            },
        ],
    });
}

pub(super) fn sharing_near_miss(s: &mut Scene) {
    let (v, colleague) = (s.user(24), s.user(25));
    s.tell(Plot {
        name: "sharing_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#17", "onedrive_exfiltration"],
        about: &v.upn,
        summary: "An organisation-only link and an invitation to a colleague.",
        records: rows![
            Share {
                op: "CompanyLinkCreated",
                file: "Team lunch.docx",
                target: "SharingLinks.9e8d7c6b-5a4f-4e3d-2c1b-0a9f8e7d6c5b.OrganizationView.0a1b2c3d-4000-5000-6000-708090a0b0c0",
                target_type: "SharePointGroup",
                ..Share::by(v)
            },
            Share {
                at: 60,
                op: "SharingInvitationCreated",
                place: Place::Site(2),
                file: "Price list.xlsx",
                target: &colleague.upn,
                target_type: "Member",
                ..Share::by(v)
            },
        ],
    });
}

pub(super) fn malware_upload(s: &mut Scene) {
    let v = s.user(25);
    let exe = File {
        place: Place::OneDrive,
        file: "invoice_viewer.exe",
        ..File::by(v)
    };
    s.tell(Plot {
        name: "malware_upload",
        near_miss: false,
        fires: &["s2.2#18"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "An executable is uploaded to OneDrive and flagged as malware.",
        records: rows![
            File {
                op: "FileUploaded",
                ip: &v.home_ip,
                ..exe
            },
            File {
                at: 300,
                op: "FileMalwareDetected",
                ua: "",
                ip: "",
                ..exe
            },
        ],
    });
}

pub(super) fn malware_near_miss(s: &mut Scene) {
    let v = s.user(25);
    s.tell(Plot {
        name: "malware_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#18"],
        about: &v.upn,
        summary: "A document whose name mentions exe.",
        records: rows![File {
            op: "FileUploaded",
            place: Place::OneDrive,
            file: "exe-install-notes.docx",
            ..File::by(v)
        }],
    });
}

pub(super) fn sensitive_search(s: &mut Scene) {
    let v = s.user(29);
    let ip = "203.0.113.170";
    s.tell(Plot {
        name: "sensitive_search",
        near_miss: false,
        fires: &["s2.2#23"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "SharePoint searches for password and vpn credentials.",
        records: rows![
            Search {
                ip,
                query: "password",
                ..Search::by(v)
            }
            .on_side(SEARCH),
            Search {
                at: 30,
                ip,
                query: "vpn credentials",
                ..Search::by(v)
            }
            .on_side(SEARCH),
        ],
    });
}

pub(super) fn search_near_miss(s: &mut Scene) {
    let v = s.user(29);
    s.tell(Plot {
        name: "search_near_miss",
        near_miss: true,
        fires: &[],
        must_not_fire: &["s2.2#23"],
        about: &v.upn,
        summary: "A search for the quarterly report.",
        records: rows![
            Search {
                query: "quarterly report",
                ..Search::by(v)
            }
            .on_side(SEARCH),
        ],
    });
}
