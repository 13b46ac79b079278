# title: Mail-flow (transport) rule created or changed
# table: cloud.office365.management.exchange
# severity: medium
# operations: New-TransportRule, Set-TransportRule, Remove-TransportRule, Disable-TransportRule
# fields: Workload, Operation, Parameters, UserId, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, Operation, rule
# mitre: T1114.003
# description: Transport rules apply to the whole organisation; RedirectMessageTo,
#   BlindCopyTo and AddToRecipients exfiltrate every matching mail (Elastic
#   exfiltration_exchange_transport_rule_*, Sentinel Mail_redirect_via_ExO_transport_rule).
include "m365";
select(.Workload == "Exchange")
| select(.Operation | one_of(["New-TransportRule", "Set-TransportRule", "Remove-TransportRule", "Disable-TransportRule"]))
| params as $p
| {
    Operation,
    UserId,
    ip: actor_ip,
    rule: ($p.Name // $p.Identity // .ObjectId // null),
    redirect: ([$p.RedirectMessageTo, $p.BlindCopyTo, $p.AddToRecipients] | map(addresses[]) | unique)
  }
