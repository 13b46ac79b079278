# title: Password spray from one address
# table: auth.all
# severity: high
# operations: UserLoginFailed
# group_by: ip
# threshold: 20
# window: 60m
# mitre: T1110.003
# description: 20 or more UserLoginFailed from one client address within 60 minutes,
#   whichever accounts they target.
include "m365";
select(.Operation == "UserLoginFailed")
| actor_ip as $ip
| select($ip != null)
| {ip: $ip, UserId, LogonError: (.LogonError // null)}
