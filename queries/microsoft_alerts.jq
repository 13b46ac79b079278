# title: Microsoft's own alerts
# table: cloud.office365.management.securitycompliancecenter
# severity: medium
# operations: AlertTriggered, AlertEntityGenerated
# fields: Workload, Operation, Data, Name, Severity, Category, AlertId, AlertEntityId
# group_by: Name, Severity, Category
# mitre: T1078
# description: Security & Compliance alerts (RecordType 40) forwarded as hits, keyed on
#   Name, Severity and Category; the user comes from Data, a JSON string (Sigma's 13
#   threat_management rules key on these names).
include "m365";
select(.Workload == "SecurityComplianceCenter" and (.Operation == "AlertTriggered" or .Operation == "AlertEntityGenerated"))
| (.Data | fromjson_or_self | if type == "object" then . else {} end) as $d
| {
    Operation,
    Name: (.Name // null),
    Severity: (.Severity // null),
    Category: (.Category // null),
    AlertId: (.AlertId // null),
    user: (.AlertEntityId // $d.f3u // $d.eid // null)
  }
