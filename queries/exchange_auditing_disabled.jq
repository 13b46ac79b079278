# title: Exchange auditing disabled (Devo starter query, faithful)
# table: cloud.office365.management.exchange
# severity: high
# operations: Remove-AuditConfigurationPolicy
# fields: Operation, UserId, Workload, ActorIpAddress, ObjectId, ClientIP
# seed: implements exchange_auditing_disabled
# mitre: T1562.008
# description: Remove-AuditConfigurationPolicy in the Exchange table, as in the guide. The
#   cmdlet is Security & Compliance only, so on real data this never fires: see
#   audit_logging_disabled.
include "m365";
select(.Workload == "Exchange" and .Operation == "Remove-AuditConfigurationPolicy")
| devo_columns
