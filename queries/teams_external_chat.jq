# title: Teams chat or message with users of a foreign tenant
# table: cloud.office365.management
# severity: medium
# group_by: UserId, domains
# seed: corrects teams_exfiltration
# mitre: T1567
# description: ParticipantInfo.HasForeignTenantUsers == true on any Teams record (RecordType
#   25 or Workload MicrosoftTeams), with the counterpart domains and tenants for triage.
include "m365";
select(.Workload == "MicrosoftTeams" or record_type == 25)
| select(.ParticipantInfo.HasForeignTenantUsers? == true)
| {
    Operation,
    UserId,
    CommunicationType: (.CommunicationType // null),
    domains: (.ParticipantInfo.ParticipatingDomains // []),
    tenants: (.ParticipantInfo.ParticipatingTenantIds // [])
  }
