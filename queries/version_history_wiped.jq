# title: File version history deleted (SharePoint and OneDrive)
# table: cloud.office365.management
# severity: high
# operations: FileVersionsAllDeleted
# fields: Workload, Operation, UserId, SourceFileName, ObjectId, SiteUrl, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId
# seed: corrects sharepoint_data_destruction
# mitre: T1485
# description: FileVersionsAllDeleted in SharePoint and in OneDrive, with the file and site.
include "m365";
select((.Workload == "SharePoint" or .Workload == "OneDrive") and .Operation == "FileVersionsAllDeleted")
| {UserId, Workload, file: (.SourceFileName // .ObjectId // null), site: (.SiteUrl // null), ip: actor_ip}
