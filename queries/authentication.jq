# title: Authentication (Devo starter query, faithful)
# table: cloud.office365.management
# severity: info
# operations: UserLoggedIn, UserLoginFailed
# fields: Operation, ActorIpAddress, UserId
# group_by: Operation, ActorIpAddress, UserId, collector_id
# seed: implements authentication
# mitre: T1078
# description: Every UserLoggedIn or UserLoginFailed, grouped as the guide groups them.
#   $collector_id stands in for split(hostchain,"-",1). Counts OAuth steps, not sign-ins:
#   see authentication_outcomes for the corrected form.
include "m365";
select(.Operation == "UserLoggedIn" or .Operation == "UserLoginFailed")
| {Operation, ActorIpAddress, UserId, collector_id: $collector_id}
