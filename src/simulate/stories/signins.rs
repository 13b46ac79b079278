//! Entra sign-in stories: brute force, password spray, lockout, device-code phishing,
//! legacy authentication and impossible travel, each with its near-miss.

use super::super::factory::{APP_BROKER, APP_EXO, APP_OFFICE};
use super::super::tenant::UAS;
use super::scene::*;

pub(super) fn brute_force(s: &mut Scene) {
    let v = s.user(5);
    let script = Login {
        ip: "203.0.113.66",
        ua: UA_PYTHON,
        request: "OAuth2:Token",
        app: APP_EXO,
        ..Login::by(v)
    };
    s.tell(Plot {
        name: "brute_force",
        near_miss: false,
        fires: &["authentication", "s2.2#7"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "25 failed sign-ins (50126) for one user from one IP in 25 minutes, then a success from that IP.",
        records: [
            script.failed(BAD_PASSWORD).repeated(25, 60),
            rows![Login { at: 25 * 60, ..script }],
        ]
        .concat(),
    });
}

pub(super) fn brute_force_near_miss(s: &mut Scene) {
    let v = s.user(6);
    s.tell(Plot {
        name: "brute_force_near_miss",
        near_miss: true,
        fires: &["authentication"],
        must_not_fire: &["s2.2#7"],
        about: &v.upn,
        summary: "4 mistyped passwords and 3 MFA interrupts (UserLoginFailed with ResultStatus \"Success\") then a success: below any brute-force threshold.",
        records: [
            Login::by(v).failed(BAD_PASSWORD).repeated(4, 120),
            Login {
                at: 600,
                error: Some(("50074", "UserStrongAuthClientAuthNRequired")),
                ..Login::by(v)
            }
            .repeated(3, 30),
            rows![Login {
                at: 700,
                request: "OAuth2:Token",
                status: "Succeeded",
                ..Login::by(v)
            }],
        ]
        .concat(),
    });
}

pub(super) fn password_spray(s: &mut Scene) {
    let records = (0..15)
        .map(|i| {
            let attempt = Login {
                at: i as i64 * 40,
                ip: "203.0.113.77",
                ua: UA_PYTHON,
                request: "OAuth2:Token",
                app: APP_EXO,
                ..Login::by(s.user(30 + i))
            };
            attempt.failed(BAD_PASSWORD).into()
        })
        .collect();
    s.tell(Plot {
        name: "password_spray",
        near_miss: false,
        fires: &["authentication", "s2.2#7"],
        must_not_fire: &[],
        about: "203.0.113.77",
        summary: "One IP tries one password against 15 users in 10 minutes.",
        records,
    });
}

pub(super) fn account_lockout(s: &mut Scene) {
    let v = s.user(7);
    let script = Login {
        ip: "203.0.113.81",
        ua: UA_PYTHON,
        request: "OAuth2:Token",
        app: APP_EXO,
        ..Login::by(v)
    };
    s.tell(Plot {
        name: "account_lockout",
        near_miss: false,
        fires: &["authentication", "s2.2#7"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Failures end in an account lockout (ErrorNumber 50053, LogonError IdsLocked).",
        records: [
            script.failed(BAD_PASSWORD).repeated(3, 20),
            rows![Login {
                at: 80,
                ..script.failed(("50053", "IdsLocked"))
            }],
        ]
        .concat(),
    });
}

pub(super) fn not_available_failures(s: &mut Scene) {
    let records = (0..12)
        .map(|i| {
            let attempt = Login {
                at: i * 50,
                ip: "203.0.113.90",
                ua: UA_PYTHON,
                request: "OAuth2:Token",
                app: APP_EXO,
                rt_as_string: i % 3 == 0,
                ..Login::unknown()
            };
            attempt.failed(("50034", "UserAccountNotFound")).into()
        })
        .collect();
    s.tell(Plot {
        name: "not_available_failures",
        near_miss: true,
        fires: &["authentication"],
        must_not_fire: &["s2.2#7"],
        about: "Not Available",
        summary: "12 failures for unknown users: UserId \"Not Available\" (RecordType sometimes a string) must be excluded from per-user brute force.",
        records,
    });
}

pub(super) fn device_code_phish(s: &mut Scene) {
    let v = s.user(17);
    s.tell(Plot {
        name: "device_code_phish",
        near_miss: false,
        fires: &["authentication", "s2.2#12"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Device-code sign-in (Cmsi:Cmsi) to the Authentication Broker, then a token from an axios client on another IP.",
        records: rows![
            Login {
                ip: "203.0.113.120",
                request: "Cmsi:Cmsi",
                app: APP_BROKER,
                ..Login::by(v)
            },
            Login {
                at: 90,
                ip: "203.0.113.121",
                ua: "axios/1.7.7",
                request: "OAuth2:Token",
                app: APP_OFFICE,
                ..Login::by(v)
            },
        ],
    });
}

pub(super) fn device_code_near_miss(s: &mut Scene) {
    let v = s.user(17);
    s.tell(Plot {
        name: "device_code_near_miss",
        near_miss: true,
        fires: &["authentication"],
        must_not_fire: &["s2.2#12", "s2.2#13"],
        about: &v.upn,
        summary: "An ordinary browser token request.",
        records: rows![Login {
            request: "OAuth2:Token",
            app: APP_OFFICE,
            ..Login::by(v)
        }],
    });
}

pub(super) fn ropc_legacy_auth(s: &mut Scene) {
    let v = s.user(18);
    s.tell(Plot {
        name: "ropc_legacy_auth",
        near_miss: false,
        fires: &["authentication", "s2.2#13"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Legacy ROPC sign-in (UserAgent BAV2ROPC).",
        records: rows![Login {
            ip: "203.0.113.140",
            ua: "BAV2ROPC",
            request: "OAuth2:Token",
            app: APP_EXO,
            ..Login::by(v)
        }],
    });
}

pub(super) fn ropc_near_miss(s: &mut Scene) {
    let v = s.user(18);
    s.tell(Plot {
        name: "ropc_near_miss",
        near_miss: true,
        fires: &["authentication"],
        must_not_fire: &["s2.2#13"],
        about: &v.upn,
        summary: "Outlook desktop sign-in.",
        records: rows![Login {
            ua: UAS[4],
            request: "OAuth2:Token",
            app: APP_EXO,
            ..Login::by(v)
        }],
    });
}

pub(super) fn impossible_travel(s: &mut Scene) {
    let v = s.user(19);
    s.tell(Plot {
        name: "impossible_travel",
        near_miss: false,
        fires: &["authentication", "s2.2#14"],
        must_not_fire: &[],
        about: &v.upn,
        summary: "Sign-in from the office (198.51.100.0/24, Netherlands in the practice geo table) and 20 minutes later from 203.0.113.200 (Brazil in the practice geo table).",
        records: rows![
            Login::by(v),
            Login {
                at: 1200,
                ip: "203.0.113.200",
                ..Login::by(v)
            },
        ],
    });
}

pub(super) fn travel_near_miss(s: &mut Scene) {
    let v = s.user(20);
    s.tell(Plot {
        name: "travel_near_miss",
        near_miss: true,
        fires: &["authentication"],
        must_not_fire: &["s2.2#14"],
        about: &v.upn,
        summary: "Office then home (192.0.2.0/24, same country) 20 minutes later.",
        records: rows![
            Login::by(v),
            Login {
                at: 1200,
                ip: &v.home_ip,
                ..Login::by(v)
            },
        ],
    });
}
