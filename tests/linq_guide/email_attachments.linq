from cloud.office365.management.exchange where eq(Operation,"AttachmentDownload") group by UserId, jsonparse(message)["AttachmentName"]
