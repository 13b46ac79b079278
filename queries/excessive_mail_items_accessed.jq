# title: Excessive mailbox item access
# table: cloud.office365.management.exchange
# severity: medium
# operations: MailItemsAccessed
# fields: Operation, OperationProperties, OperationCount, UserId, MailboxOwnerUPN, ClientAppId, AppId
# group_by: UserId, MailboxOwnerUPN
# mitre: T1114.002
# description: MailItemsAccessed that was throttled (over 1000 items in 24 h) or aggregates
#   100 or more accesses (Elastic collection_exchange_excessive_mail_items_accessed).
include "m365";
select(.Operation == "MailItemsAccessed")
| ((op_prop("IsThrottled") | flag_value) == "true") as $throttled
| ((.OperationCount // 0) | if type == "string" then (tonumber? // 0) else . end) as $n
| select($throttled or $n >= 100)
| {
    UserId,
    MailboxOwnerUPN: (.MailboxOwnerUPN // null),
    ClientAppId: (.ClientAppId // .AppId // null),
    count: $n,
    throttled: $throttled
  }
