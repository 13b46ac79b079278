# title: Inbox rule hiding security or finance mail
# table: cloud.office365.management.exchange
# severity: high
# operations: New-InboxRule, Set-InboxRule
# fields: Parameters, Operation, UserId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, rule
# mitre: T1564.008
# description: An inbox rule that deletes, moves or marks as read messages matching security
#   or finance words, or whose name is only punctuation (Elastic
#   defense_evasion_exchange_new_inbox_rule_delete_or_move, ..._obfuscated_name).
include "m365";
params as $p
| (($p.DeleteMessage | flag_value) == "true" or ($p.SoftDeleteMessage | flag_value) == "true"
   or ($p.MarkAsRead | flag_value) == "true" or ($p.MoveToFolder != null)) as $hides
| ([$p.SubjectContainsWords, $p.BodyContainsWords, $p.SubjectOrBodyContainsWords, $p.FromAddressContainsWords]
   | map(strings) | join(" ")) as $words
| ($words | ci_any(["invoice", "payment", "wire", "bank", "transfer", "security", "phish", "hack", "compromis",
    "password", "suspicious", "fraud", "helpdesk", "mfa", "verify"])) as $keywords
| (($p.Name // "") | type == "string" and length > 0 and test("^[^A-Za-z0-9]+$")) as $obfuscated
| select($hides and ($keywords or $obfuscated))
| {
    Operation,
    UserId,
    ip: actor_ip,
    rule: ($p.Name // null),
    words: $words,
    delete: (($p.DeleteMessage | flag_value) == "true"),
    move_to: ($p.MoveToFolder // null),
    obfuscated_name: $obfuscated
  }
