//! Which values on a page are pivots: a UserId links to the user page and an address to
//! the IP page wherever one appears, also inside a detection's group columns (named by
//! the detection's `group_by` or its emitted keys). Builds our own paths only, with the
//! value percent-encoded.

use super::pages::enc;

/// Column names (lower case) that hold a UserId.
const USER_COLUMNS: [&str; 6] = ["userid", "user", "user_id", "userkey_upn", "upn", "actor"];
/// Column names (lower case) that hold an IP address.
const IP_COLUMNS: [&str; 7] = [
    "clientip",
    "clientipaddress",
    "client_ip",
    "ip",
    "ipaddress",
    "actoripaddress",
    "sourceip",
];

pub fn user_href(u: &str) -> String {
    format!("/user?id={}", enc(u))
}

pub fn ip_href(ip: &str) -> String {
    format!("/ip?addr={}", enc(ip))
}

/// The pivot link of a value in a column, or "" when the column is neither a user nor an
/// address (or the value is empty).
pub fn column_href(column: &str, value: &str) -> String {
    let c = column.to_ascii_lowercase();
    let last = c.rsplit('.').next().unwrap_or(&c);
    if value.is_empty() {
        String::new()
    } else if USER_COLUMNS.contains(&last) {
        user_href(value)
    } else if IP_COLUMNS.contains(&last) {
        ip_href(value)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_addresses_link_wherever_they_are_columns() {
        assert_eq!(column_href("UserId", "a b@x"), "/user?id=a%20b%40x");
        assert_eq!(
            column_href("ClientIP", "203.0.113.7"),
            "/ip?addr=203.0.113.7"
        );
        assert_eq!(column_href("details.ClientIP", "::1"), "/ip?addr=%3A%3A1");
        assert_eq!(column_href("Operation", "x"), "");
        assert_eq!(column_href("UserId", ""), "");
    }
}
