# title: Wrong claim
# table: cloud.office365.management
# fields: Operation
select(.Operation == "X") | {UserId}
