from cloud.office365.management.sharepoint where Operation = "FileVersionsAllDeleted"
