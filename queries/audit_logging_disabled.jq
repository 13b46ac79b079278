# title: Audit logging disabled or bypassed
# table: cloud.office365.management
# severity: high
# operations: Set-AdminAuditLogConfig, Set-MailboxAuditBypassAssociation, Set-Mailbox, Set-OrganizationConfig, Remove-AuditConfigurationPolicy
# fields: Parameters, Operation, UserId, Workload, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, Operation
# seed: corrects exchange_auditing_disabled
# mitre: T1562.008
# description: The switches that really stop auditing: Set-AdminAuditLogConfig with
#   UnifiedAuditLogIngestionEnabled/AdminAuditLogEnabled False, a mailbox audit bypass,
#   Set-Mailbox AuditEnabled False, Set-OrganizationConfig AuditDisabled True, and the SCC
#   Remove-AuditConfigurationPolicy in whichever workload it arrives. Parameters may be an
#   array or a string. Install-AdminAuditLogConfig (a system install) does not fire.
include "m365";
params as $p
| .Operation as $op
| [
    (if $op == "Set-AdminAuditLogConfig" and ($p.UnifiedAuditLogIngestionEnabled | flag_value) == "false" then "UnifiedAuditLogIngestionEnabled=False" else empty end),
    (if $op == "Set-AdminAuditLogConfig" and ($p.AdminAuditLogEnabled | flag_value) == "false" then "AdminAuditLogEnabled=False" else empty end),
    (if $op == "Set-MailboxAuditBypassAssociation" and ($p.AuditBypassEnabled | flag_value) == "true" then "AuditBypassEnabled=True" else empty end),
    (if $op == "Set-Mailbox" and ($p.AuditEnabled | flag_value) == "false" then "AuditEnabled=False" else empty end),
    (if $op == "Set-OrganizationConfig" and ($p.AuditDisabled | flag_value) == "true" then "AuditDisabled=True" else empty end),
    (if $op == "Remove-AuditConfigurationPolicy" then "audit configuration policy removed" else empty end)
  ] as $changes
| select($changes | length > 0)
| {
    Operation,
    UserId,
    Workload,
    ip: actor_ip,
    target: ($p.Identity // .ObjectId // null),
    changes: $changes
  }
