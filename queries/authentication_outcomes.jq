# title: Sign-in outcomes by user, address and failure reason
# table: auth.all
# severity: info
# operations: UserLoggedIn, UserLoginFailed
# fields: Operation, ExtendedProperties[ResultStatusDetail|RequestType], UserId, LogonError, ErrorNumber, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: outcome, UserId, ip, LogonError
# seed: corrects authentication
# mitre: T1078
# description: Completed sign-ins and failures, split by LogonError/ErrorNumber. OAuth
#   steps that only redirect (ResultStatusDetail=Redirect) are not sign-ins; the outcome
#   comes from Operation, never ResultStatus (a UserLoginFailed may say "Success").
include "m365";
select(.Operation == "UserLoggedIn" or .Operation == "UserLoginFailed")
| select(.Operation == "UserLoginFailed" or (ext_prop("ResultStatusDetail") // "") != "Redirect")
| {
    outcome: (if .Operation == "UserLoggedIn" then "success" else "failure" end),
    UserId,
    ip: actor_ip,
    LogonError: (.LogonError // null),
    ErrorNumber: (.ErrorNumber // null | if type == "number" then tostring else . end),
    RequestType: ext_prop("RequestType"),
    collector_id: $collector_id
  }
