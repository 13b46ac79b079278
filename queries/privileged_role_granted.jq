# title: Privileged directory role granted
# table: cloud.office365.management.azureactivedirectory
# severity: high
# operations: Add member to role.
# fields: Operation, ModifiedProperties, UserId, Target, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: target, role
# mitre: T1098.003
# description: Add member to role. for an administrator role (Elastic
#   persistence_entra_id_global_administrator_role_assign and friends).
include "m365";
select(.Operation == "Add member to role.")
| (mod_props["Role.DisplayName"].new | fromjson_or_self | str_or_null) as $role
| select($role | one_of(["Global Administrator", "Company Administrator", "Privileged Role Administrator",
    "Privileged Authentication Administrator", "Security Administrator", "Exchange Administrator",
    "SharePoint Administrator", "User Administrator", "Application Administrator",
    "Cloud Application Administrator", "Authentication Administrator", "Conditional Access Administrator",
    "Compliance Administrator", "Hybrid Identity Administrator"]))
| {
    UserId,
    target: (first(.Target[]? | objects | select(.Type == 5) | .ID) // .ObjectId // null),
    role: $role,
    ip: actor_ip
  }
