# title: One-on-one Teams chat from a foreign "help desk"
# table: cloud.office365.management.microsoftteams
# severity: high
# operations: ChatCreated
# fields: Operation, ParticipantInfo, CommunicationType, UserId, Members
# contains: HasForeignTenantUsers
# group_by: UserId, impostor
# mitre: T1566.003
# description: ChatCreated, OneOnOne, foreign tenant, where a member from another domain is
#   named like IT support or Microsoft security (Elastic initial_access_teams_rogue_helpdesk_chat).
include "m365";
select(.Operation == "ChatCreated" and .ParticipantInfo.HasForeignTenantUsers? == true and .CommunicationType == "OneOnOne")
| .UserId as $u
| [.Members[]? | objects
   | select((.UPN | is_external_addr($u; null))
            and (.DisplayName | ci_any(["help desk", "helpdesk", "service desk", "it support", "tech support", "microsoft security", "security team", "it department"])))]
| select(length > 0)
| {UserId: $u, impostor: .[0].UPN, display_name: .[0].DisplayName}
