# title: MFA removed or disabled for a user
# table: cloud.office365.management.azureactivedirectory
# severity: high
# operations: Update user., Disable Strong Authentication.
# fields: Operation, ModifiedProperties, UserId, Target, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, target
# mitre: T1556.006
# description: StrongAuthenticationMethod going from a non-empty list to [] (the values are
#   JSON inside strings), or Disable Strong Authentication (Panther Microsoft365.MFA.Disabled,
#   Sigma microsoft365_disabling_mfa).
include "m365";
select(.Operation == "Update user." or .Operation == "Disable Strong Authentication.")
| mod_props as $m
| select(.Operation == "Disable Strong Authentication."
    or ($m.StrongAuthenticationMethod != null
        and ($m.StrongAuthenticationMethod.new | fromjson_or_self | . == [] or . == null or . == "")
        and ($m.StrongAuthenticationMethod.old | fromjson_or_self | type == "array" and length > 0)))
| {
    Operation,
    UserId,
    target: (first(.Target[]? | objects | select(.Type == 5) | .ID) // .ObjectId // null),
    ip: actor_ip
  }
