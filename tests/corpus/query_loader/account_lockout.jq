# title: Account locked out by failed sign-ins
# table: auth.all
# severity: medium
# operations: UserLoginFailed
# fields: Operation, LogonError, ErrorNumber, UserId, ActorIpAddress, ClientIP, ClientIPAddress
# contains: IdsLocked, 50053
# group_by: UserId
# mitre: T1110
# description: LogonError IdsLocked (AADSTS50053): smart lockout tripped (Elastic
#   ..._identity_user_account_lockouts).
include "m365";
select(.Operation == "UserLoginFailed" and (.LogonError == "IdsLocked" or ((.ErrorNumber // "") | tostring) == "50053"))
| {UserId, ip: actor_ip}
