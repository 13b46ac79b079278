# title: Federated or accepted domain added or changed
# table: cloud.office365.management
# severity: high
# operations: Add-FederatedDomain, New-AcceptedDomain, Set-AcceptedDomain, Set domain authentication., Set federation settings on domain.
# fields: Operation, Parameters, UserId, Workload, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, domain
# mitre: T1484.002
# description: A new or re-federated domain lets an attacker's IdP sign in as any user
#   (Sigma microsoft365_new_federated_domain_added_*, Elastic ..._new_or_modified_federation_domain).
include "m365";
select(.Operation | one_of(["Add-FederatedDomain", "New-AcceptedDomain", "Set-AcceptedDomain",
  "Set domain authentication.", "Set federation settings on domain."]))
| params as $p
| {Operation, UserId, Workload, ip: actor_ip, domain: ($p.DomainName // $p.Name // $p.Identity // .ObjectId // null)}
