# title: Sign-in with the device-code flow
# table: auth.all
# severity: medium
# operations: UserLoggedIn
# group_by: UserId, ip
# mitre: T1528
# description: RequestType Cmsi:Cmsi is the device-code grant that OAuth phishing kits abuse
#   (Elastic device-code rules, Sigma microsoft365_bypass_conditional_access).
include "m365";
select(.Operation == "UserLoggedIn")
| ext_props as $x
| select(($x.RequestType // "") == "Cmsi:Cmsi")
| {UserId, ip: actor_ip, ApplicationId: (.ApplicationId // null), UserAgent: ($x.UserAgent // null)}
