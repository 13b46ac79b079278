# title: Encrypted-mail attachments downloaded, by recipient
# table: cloud.office365.management.exchange
# severity: low
# operations: AttachmentDownload
# fields: Operation, RecordType, Workload, Recipient, Sender, UserId, AttachmentName, MessageId, AuthenticationMethod
# group_by: Recipient, Sender, AttachmentName
# seed: corrects email_attachments
# mitre: T1114
# description: OMEPortal (RecordType 154) AttachmentDownload: the person who downloaded is
#   Recipient; UserId/Sender is the internal sender.
include "m365";
select(.Operation == "AttachmentDownload" and (record_type == 154 or .Workload == "Exchange"))
| {
    Recipient: (.Recipient // null),
    Sender: (.Sender // .UserId // null),
    AttachmentName: (.AttachmentName // null),
    MessageId: (.MessageId // null),
    AuthenticationMethod: (.AuthenticationMethod // null)
  }
