# title: Teams chat or message with users of a foreign tenant
# table: cloud.office365.management.microsoftteams
# fields: Workload, ParticipantInfo, Operation, UserId, CommunicationType
# contains: HasForeignTenantUsers
# severity: medium
# group_by: UserId, domains
# seed: corrects teams_exfiltration
# mitre: T1567
# description: ParticipantInfo.HasForeignTenantUsers == true (not merely present) on any
#   Teams record, with the counterpart domains and tenants for triage.
include "m365";
select(.Workload == "MicrosoftTeams")
| select(.ParticipantInfo.HasForeignTenantUsers? == true)
| {
    Operation,
    UserId,
    CommunicationType: (.CommunicationType // null),
    domains: (.ParticipantInfo.ParticipatingDomains // []),
    tenants: (.ParticipantInfo.ParticipatingTenantIds // [])
  }
