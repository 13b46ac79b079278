# title: SharePoint version history deleted (Devo starter query, faithful)
# table: cloud.office365.management.sharepoint
# severity: high
# operations: FileVersionsAllDeleted
# fields: Operation, UserId, Workload, ActorIpAddress, ObjectId, ClientIP
# seed: implements sharepoint_data_destruction
# mitre: T1485
# description: FileVersionsAllDeleted in SharePoint only, as in the guide; OneDrive is
#   missed: see version_history_wiped and mass_file_deletion.
include "m365";
select(.Workload == "SharePoint" and .Operation == "FileVersionsAllDeleted")
| devo_columns
