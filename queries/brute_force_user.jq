# title: Brute force against one account
# table: auth.all
# severity: high
# operations: UserLoginFailed
# fields: Operation, UserId, LogonError, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId
# threshold: 10
# window: 60m
# mitre: T1110.001
# description: 10 or more UserLoginFailed for one UserId within 60 minutes (Panther
#   Microsoft365.Brute.Force.Login.by.User). "Not Available" identities are left out.
include "m365";
select(.Operation == "UserLoginFailed")
| select((.UserId | str_or_null) != null and (.UserId | ascii_downcase) != "not available")
| {UserId, ip: actor_ip, LogonError: (.LogonError // null)}
