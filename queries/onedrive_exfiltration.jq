# title: OneDrive strategic file shared (Devo starter query, faithful)
# table: cloud.office365.management.onedrive
# severity: medium
# operations: SharingSet
# fields: Workload, Operation, ObjectId, ClientIP, TargetUserOrGroupName
# seed: implements onedrive_exfiltration
# mitre: T1567
# description: SharingSet whose ObjectId (the full URL) contains "strategic", ignoring case
#   (weakhas). SharingSet is internal sharing, OneDrive only: see external_sharing.
include "m365";
select(.Workload == "OneDrive" and .Operation == "SharingSet")
| (.ObjectId | str_or_null) as $file
| select($file | ci_contains("strategic"))
| {file: $file, ClientIP, TargetUserOrGroupName}
