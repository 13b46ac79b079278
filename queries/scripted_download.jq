# title: Files downloaded by a scripted client
# table: cloud.office365.management
# severity: medium
# operations: FileDownloaded, FileAccessed, FileSyncDownloadedFull
# fields: Workload, Operation, UserAgent, UserId, SourceFileName, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# contains: powershell, pnp, python-requests, python/, curl/, wget/, go-http-client, axios/, node-fetch
# group_by: UserId, UserAgent
# mitre: T1530
# description: A PowerShell, PnP, curl, Python or similar user agent reading files
#   (Elastic collection_sharepoint_file_download_via_powershell).
include "m365";
select((.Workload == "SharePoint" or .Workload == "OneDrive")
       and (.Operation == "FileDownloaded" or .Operation == "FileAccessed" or .Operation == "FileSyncDownloadedFull"))
| select(.UserAgent | ci_any(["powershell", "pnp", "python-requests", "python/", "curl/", "wget/", "go-http-client", "axios/", "node-fetch"]))
| {UserId, UserAgent, ip: actor_ip, file: (.SourceFileName // .ObjectId // null)}
