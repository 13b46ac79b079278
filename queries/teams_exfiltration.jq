# title: Teams activity with foreign tenants (Devo starter query, faithful)
# table: cloud.office365.management.microsoftteams
# fields: ParticipantInfo, Operation, UserId, Workload, ActorIpAddress, ObjectId, ClientIP
# contains: HasForeignTenantUsers
# severity: medium
# seed: implements teams_exfiltration
# mitre: T1567
# description: isnotnull(ParticipantInfo.HasForeignTenantUsers): fires on false as well, as
#   Devo does. See teams_external_chat for `== true`.
include "m365";
select(.Workload == "MicrosoftTeams")
| (.ParticipantInfo.HasForeignTenantUsers?) as $foreign
| select($foreign != null)
| devo_columns + {foreign: $foreign}
