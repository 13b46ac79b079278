# title: Sign-in with the device-code flow
# table: auth.all
# severity: medium
# operations: UserLoggedIn
# fields: Operation, ExtendedProperties[RequestType|UserAgent], UserId, ApplicationId, ActorIpAddress, ClientIP, ClientIPAddress
# contains: Cmsi:Cmsi
# group_by: UserId, ip
# mitre: T1528
# description: RequestType Cmsi:Cmsi is the device-code grant that OAuth phishing kits abuse
#   (Elastic device-code rules, Sigma microsoft365_bypass_conditional_access).
include "m365";
select(.Operation == "UserLoggedIn")
| select((ext_prop("RequestType") // "") == "Cmsi:Cmsi")
| {UserId, ip: actor_ip, ApplicationId: (.ApplicationId // null), UserAgent: ext_prop("UserAgent")}
