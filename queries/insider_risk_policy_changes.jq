# title: Insider risk policy created, changed or removed
# table: cloud.office365.management.securitycompliancecenter
# severity: medium
# operations: New-InsiderRiskPolicy, Set-InsiderRiskPolicy, Remove-InsiderRiskPolicy, Set-InsiderRiskPolicyLite, New-InsiderRiskEntityList, Set-InsiderRiskEntityList, Remove-InsiderRiskEntityList
# fields: Workload, Operation, Parameters, UserId, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, Operation, policy
# seed: corrects insider_risk_policies
# mitre: T1562
# description: The exact S&C cmdlets that change Insider Risk Management policies and entity
#   lists (removal weakens monitoring of insiders), with the policy named from Parameters
#   (a string in SCC records).
include "m365";
select(.Workload == "SecurityComplianceCenter")
| select(.Operation | one_of(["New-InsiderRiskPolicy", "Set-InsiderRiskPolicy", "Remove-InsiderRiskPolicy",
    "Set-InsiderRiskPolicyLite", "New-InsiderRiskEntityList", "Set-InsiderRiskEntityList", "Remove-InsiderRiskEntityList"]))
| params as $p
| {Operation, UserId, ip: actor_ip, policy: ($p.Identity // $p.Name // .ObjectId // null)}
