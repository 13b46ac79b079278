# title: eDiscovery search exported
# table: cloud.office365.management.securitycompliancecenter
# severity: high
# operations: New-ComplianceSearchAction, SearchExported, SearchExportDownloaded
# fields: Workload, Operation, Parameters, UserId, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, Operation
# mitre: T1114
# description: New-ComplianceSearchAction with -Export (PST export of mailboxes), and the
#   export/download events (Sigma microsoft365_pst_export_alert*).
include "m365";
select(.Workload == "SecurityComplianceCenter")
| select((.Operation == "New-ComplianceSearchAction" and (params_text | contains("export")))
    or .Operation == "SearchExported" or .Operation == "SearchExportDownloaded")
| params as $p
| {Operation, UserId, ip: actor_ip, search: ($p.SearchName // .ObjectId // null), pst: (params_text | contains("pst"))}
