# title: Email attachments downloaded (Devo starter query, faithful)
# table: cloud.office365.management.exchange
# severity: low
# operations: AttachmentDownload
# fields: Workload, Operation, UserId, AttachmentName
# group_by: UserId, AttachmentName
# seed: implements email_attachments
# mitre: T1114
# description: AttachmentDownload grouped by UserId and AttachmentName, as in the guide.
#   UserId is the sender of the encrypted mail, not who downloaded it: see
#   email_attachments_by_recipient.
include "m365";
select(.Workload == "Exchange" and .Operation == "AttachmentDownload")
| {UserId, AttachmentName}
