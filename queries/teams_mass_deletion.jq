# title: Several Teams deleted by one user
# table: cloud.office365.management.microsoftteams
# severity: high
# operations: TeamDeleted
# fields: Workload, Operation, UserId, TeamName, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId
# threshold: 3
# window: 60m
# seed: corrects sharepoint_data_destruction
# mitre: T1485
# description: Three or more teams deleted by one user within an hour: destruction of
#   collaboration spaces (Sentinel MultipleTeamsDeletes).
include "m365";
select(.Workload == "MicrosoftTeams" and .Operation == "TeamDeleted")
| {UserId, team: (.TeamName // null), ip: actor_ip}
