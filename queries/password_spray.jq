# title: Password spray from one address
# table: auth.all
# severity: high
# operations: UserLoginFailed
# fields: Operation, UserId, LogonError, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: ip
# threshold: 10
# window: 60m
# distinct: UserId
# mitre: T1110.003
# description: Failed sign-ins for 10 or more different accounts from one client address
#   within 60 minutes. "Not Available" identities (unknown users) are left out, as in
#   Elastic's rules.
include "m365";
select(.Operation == "UserLoginFailed")
| select((.UserId | str_or_null) != null and (.UserId | ascii_downcase) != "not available")
| actor_ip as $ip
| select($ip != null)
| {ip: $ip, UserId, LogonError: (.LogonError // null)}
