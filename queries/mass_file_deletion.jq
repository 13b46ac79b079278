# title: Burst of file deletions by one user
# table: cloud.office365.management
# severity: high
# operations: FileDeleted, FileRecycled, FolderRecycled, FolderDeleted, FileDeletedFirstStageRecycleBin, FileDeletedSecondStageRecycleBin, FileVersionsAllDeleted
# fields: Workload, Operation, UserId, SourceFileName, ObjectId
# group_by: UserId
# threshold: 25
# window: 10m
# seed: corrects sharepoint_data_destruction
# mitre: T1485
# description: 25 or more deletions (FileDeleted was renamed FileRecycled in 2023; recycle-bin
#   stages and version wipes count too) by one user within 10 minutes, SharePoint and OneDrive.
include "m365";
select(.Workload == "SharePoint" or .Workload == "OneDrive")
| select(.Operation | one_of(["FileDeleted", "FileRecycled", "FolderRecycled", "FolderDeleted",
    "FileDeletedFirstStageRecycleBin", "FileDeletedSecondStageRecycleBin", "FileVersionsAllDeleted"]))
| select((.UserId | str_or_null) != null and (.UserId | ascii_downcase) != "app@sharepoint")
| {UserId, Operation, Workload, file: (.SourceFileName // .ObjectId // null)}
