//! The seeded practice tenant: its ids and secrets, app registrations, users, groups,
//! sites, IP pools (IPv4, IPv6, with and without ports) and user agents. Pure data derived
//! from the seed; it must not know about time, blobs or HTTP.

use super::rng::{Rng, mix};

pub const ROLE_READ: &str = "ActivityFeed.Read";
pub const ROLE_DLP: &str = "ActivityFeed.ReadDlp";
pub const ROLE_HEALTH: &str = "ServiceHealth.Read";

/// An app registration the token endpoint knows.
#[derive(Debug, Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
    pub roles: Vec<&'static str>,
    pub name: &'static str,
}

#[derive(Debug, Clone)]
pub struct User {
    pub upn: String,
    pub display: String,
    pub puid: String,
    pub oid: String,
    pub office_ip: String,
    pub home_ip: String,
    pub v6: String,
    pub ua: usize,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub onms: String,
    pub region: String,
    /// A second tenant the main app is consented in; its API has no audit data.
    pub other_tenant_id: String,
    pub other_domain: String,
    pub apps: Vec<App>,
    pub users: Vec<User>,
    /// Indexes into `users` of admins.
    pub admins: Vec<usize>,
    pub groups: Vec<String>,
    pub sites: Vec<Site>,
    pub external: Vec<String>,
}

pub const COMPANIES: &[&str] = &[
    "Contoso",
    "Fabrikam",
    "Northwind",
    "Tailspin",
    "Adatum",
    "Litware",
    "Proseware",
    "Wingtip",
    "Woodgrove",
    "Lucerne",
    "Alpine",
    "Coho",
    "Humongous",
    "Relecloud",
    "Trey",
    "VanArsdel",
    "Southridge",
    "Blueyonder",
    "Graphic",
    "Munson",
];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloe", "David", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jakob", "Karin",
    "Liam", "Maya", "Noah", "Olga", "Pieter", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wim", "Xena", "Yusuf", "Zoe", "Lars", "Mila", "Omar", "Petra", "Ravi", "Sofia", "Tomas",
    "Elif", "Jonas", "Lea",
];
const LAST: &[&str] = &[
    "Jansen", "Smith", "Muller", "Rossi", "Novak", "Kowalski", "Dubois", "Garcia", "Berg",
    "Visser", "Tanaka", "Okafor", "Larsen", "Costa", "Meyer", "Bakker", "Nguyen", "Silva",
    "Horvat", "Popescu", "Keller", "Moreau", "Haas", "Peeters",
];
const SITES: &[&str] = &[
    "Finance",
    "HR",
    "Sales",
    "Marketing",
    "Engineering",
    "Legal",
    "Board",
    "ITOps",
    "Projects",
    "Intranet",
    "Procurement",
    "StrategicPlanning",
];
const GROUPS: &[&str] = &[
    "All Staff",
    "Finance Team",
    "Sales EMEA",
    "Engineering",
    "Helpdesk",
    "Board Members",
    "Project Phoenix",
    "Marketing",
];
pub const EXTERNAL: &[&str] = &[
    "partner@fabrikam-partners.com",
    "consultant@outlook.com",
    "j.doe@gmail.com",
    "invoices@supplier-eu.com",
    "someone@protonmail.com",
];

pub const UAS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Teams/24295.605.3225.8804 Chrome/126.0.6478.127 Electron/31.3.1 Safari/537.36",
    "Microsoft SkyDriveSync 24.201.1006.0005 ship; Windows NT 10.0 (19045)",
];

impl Tenant {
    pub fn generate(seed: u64, records_per_day: u64) -> Tenant {
        let mut r = Rng::new(mix(&[seed, 0x7E4A]));
        let name = COMPANIES[(seed % COMPANIES.len() as u64) as usize].to_string();
        let lower = name.to_ascii_lowercase();
        let domain = format!("{lower}.com");
        let onms = format!("{lower}.onmicrosoft.com");
        let id = r.guid();
        let other_tenant_id = r.guid();
        let regions = ["emea0036", "na0047", "emea0029", "can0014", "na0036"];
        let region = r.pick(&regions).to_string();
        let secret = |r: &mut Rng| {
            const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.";
            let mut s: String = (0..3).map(|_| A[r.below(62) as usize] as char).collect();
            s.push_str("8Q~");
            s.extend((0..34).map(|_| A[r.below(A.len() as u64) as usize] as char));
            s
        };
        let apps = vec![
            App {
                client_id: r.guid(),
                client_secret: secret(&mut r),
                roles: vec![ROLE_READ, ROLE_DLP, ROLE_HEALTH],
                name: "m365audit practice",
            },
            App {
                client_id: r.guid(),
                client_secret: secret(&mut r),
                roles: vec![],
                name: "no admin consent",
            },
            App {
                client_id: r.guid(),
                client_secret: secret(&mut r),
                roles: vec![ROLE_READ],
                name: "without ReadDlp",
            },
        ];
        let n_users = (40 + records_per_day / 100).min(2000) as usize;
        let mut users = Vec::with_capacity(n_users);
        let mut seen = std::collections::HashSet::new();
        let mut i = 0u64;
        while users.len() < n_users {
            i += 1;
            let first = r.pick(FIRST).to_string();
            let last = r.pick(LAST).to_string();
            let mut local = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
            if !seen.insert(local.clone()) {
                local = format!("{local}{i}");
                seen.insert(local.clone());
            }
            let n = users.len() as u64;
            users.push(User {
                upn: format!("{local}@{domain}"),
                display: format!("{first} {last}"),
                puid: format!("1003{}", r.hex_upper(12)),
                oid: r.guid(),
                office_ip: format!("198.51.100.{}", 10 + n % 60),
                home_ip: format!("192.0.2.{}", 20 + (n * 7) % 200),
                v6: format!(
                    "2001:db8:{:x}:{:x}::{:x}",
                    0x10 + n % 5,
                    r.below(0xffff),
                    r.below(0xffff) + 1
                ),
                ua: r.below(UAS.len() as u64) as usize,
            });
        }
        let admins = vec![0, 1, 2];
        let sites = SITES
            .iter()
            .map(|s| Site {
                url: format!("https://{lower}.sharepoint.com/sites/{s}"),
            })
            .collect();
        Tenant {
            id,
            other_tenant_id,
            other_domain: format!("{lower}subsidiary.onmicrosoft.com"),
            name,
            domain,
            onms,
            region,
            apps,
            users,
            admins,
            groups: GROUPS.iter().map(|g| (*g).to_string()).collect(),
            sites,
            external: EXTERNAL.iter().map(|e| (*e).to_string()).collect(),
        }
    }

    pub fn main_app(&self) -> &App {
        &self.apps[0]
    }

    /// Resolves a tenant path segment (GUID or domain) to a tenant id.
    pub fn resolve(&self, seg: &str) -> Option<&str> {
        let s = seg.to_ascii_lowercase();
        if s == self.id || s == self.domain || s == self.onms {
            Some(&self.id)
        } else if s == self.other_tenant_id || s == self.other_domain {
            Some(&self.other_tenant_id)
        } else {
            None
        }
    }

    /// The OneDrive base of a user.
    pub fn onedrive(&self, u: &User) -> String {
        let lower = self.name.to_ascii_lowercase();
        let local = u.upn.replace(['.', '@'], "_");
        format!("https://{lower}-my.sharepoint.com/personal/{local}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_tenant_other_seed_other() {
        let a = Tenant::generate(7, 2000);
        let b = Tenant::generate(7, 2000);
        let c = Tenant::generate(8, 2000);
        assert_eq!(a.id, b.id);
        assert_eq!(a.main_app().client_secret, b.main_app().client_secret);
        assert_ne!(a.id, c.id);
        assert_eq!(a.users.len(), 60);
        let upns: std::collections::HashSet<_> = a.users.iter().map(|u| &u.upn).collect();
        assert_eq!(upns.len(), a.users.len());
        assert_eq!(a.resolve(&a.domain), Some(a.id.as_str()));
        assert!(a.main_app().client_secret.contains("8Q~"));
    }
}
