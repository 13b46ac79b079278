# title: Legacy (ROPC) authentication
# table: auth.all
# severity: medium
# operations: UserLoggedIn, UserLoginFailed
# fields: Operation, ExtendedProperties[UserAgent], UserId, ActorIpAddress, ClientIP, ClientIPAddress
# contains: bav2ropc
# group_by: UserId, ip
# mitre: T1078.004
# description: User agent BAV2ROPC: a password-only legacy client that bypasses MFA
#   (Elastic initial_access_identity_ropc_grant_via_legacy_authenticated_client).
include "m365";
select(.Operation == "UserLoggedIn" or .Operation == "UserLoginFailed")
| select(ext_prop("UserAgent") | ci_contains("bav2ropc"))
| {Operation, UserId, ip: actor_ip}
