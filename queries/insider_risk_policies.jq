# title: Insider risk policy activity (Devo starter query, faithful)
# table: cloud.office365.management.securitycompliancecenter
# severity: medium
# operations: *InsiderRiskPolicy*
# fields: Operation, UserId, Workload, ActorIpAddress, ObjectId, ClientIP
# seed: implements insider_risk_policies
# mitre: T1562
# description: has(Operation,"InsiderRiskPolicy"), not has(Operation,"Get"): case-sensitive
#   substrings; a null Operation drops the row as Devo's `not` does.
include "m365";
select(.Workload == "SecurityComplianceCenter"
       and (.Operation | devo_has("InsiderRiskPolicy"))
       and ((.Operation | devo_has("Get")) | not))
| devo_columns
