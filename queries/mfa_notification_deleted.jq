# title: Security notification mail deleted
# table: cloud.office365.management.exchange
# severity: high
# operations: SoftDelete, HardDelete, MoveToDeletedItems
# fields: Operation, AffectedItems, UserId, ActorIpAddress, ClientIP, ClientIPAddress
# contains: mfa, multi-factor, multifactor, security info, sign-in method, authenticator app, new device, unusual sign-in, verification method
# group_by: UserId
# mitre: T1070.008
# description: A mail about a new MFA method, device or sign-in deleted from the mailbox:
#   attackers hide the notice of what they registered (Elastic
#   defense_evasion_mfa_notification_email_deleted).
include "m365";
select(.Operation == "SoftDelete" or .Operation == "HardDelete" or .Operation == "MoveToDeletedItems")
| [.AffectedItems[]? | objects | .Subject | strings
   | select(ci_any(["mfa", "multi-factor", "multifactor", "security info", "sign-in method", "authenticator app",
       "new device", "unusual sign-in", "verification method"]))] as $subjects
| select($subjects | length > 0)
| {Operation, UserId, ip: actor_ip, subjects: $subjects}
