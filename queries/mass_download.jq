# title: Mass download from SharePoint or OneDrive
# table: cloud.office365.management
# severity: high
# operations: FileDownloaded, FileSyncDownloadedFull
# fields: Workload, Operation, UserId, SourceFileName, ObjectId, SiteUrl, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId
# threshold: 50
# window: 15m
# mitre: T1530
# description: 50 or more files downloaded or synced by one user within 15 minutes (Elastic
#   collection_onedrive_excessive_file_downloads, Sentinel sharepoint_file_transfer_above_threshold).
include "m365";
select((.Workload == "SharePoint" or .Workload == "OneDrive")
       and (.Operation == "FileDownloaded" or .Operation == "FileSyncDownloadedFull"))
| {UserId, ip: actor_ip, file: (.SourceFileName // .ObjectId // null), site: (.SiteUrl // null)}
