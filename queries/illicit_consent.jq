# title: User consented to an application
# table: cloud.office365.management.azureactivedirectory
# severity: medium
# operations: Consent to application.
# fields: Operation, ModifiedProperties, UserId, Target, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, app
# mitre: T1528
# description: A user (not an admin-consent flow) granted an application access to their
#   data: the illicit-consent phishing pattern (Elastic
#   initial_access_identity_illicit_consent_grant_via_registered_application).
include "m365";
select(.Operation == "Consent to application.")
| mod_props as $m
| ($m["ConsentContext.IsAdminConsent"].new | fromjson_or_self | flag_value) as $admin
| select($admin != "true")
| {
    UserId,
    app: (first(.Target[]? | objects | select(.Type == 2 or .Type == 1) | .ID | strings) // .ObjectId // null),
    permissions: ($m["ConsentAction.Permissions"].new // null),
    ip: actor_ip
  }
