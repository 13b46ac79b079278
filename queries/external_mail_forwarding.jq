# title: Mail forwarded to an external address
# table: cloud.office365.management.exchange
# severity: high
# operations: Set-Mailbox, New-InboxRule, Set-InboxRule, UpdateInboxRules
# fields: Parameters, UserId, OrganizationName, Operation, OperationProperties, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, targets
# mitre: T1114.003
# description: Set-Mailbox ForwardingSmtpAddress/ForwardingAddress, New-/Set-InboxRule
#   ForwardTo/ForwardAsAttachmentTo/RedirectTo, and Outlook's UpdateInboxRules, where an
#   address is outside the actor's and the organisation's domain. `stealthy` is true when
#   the mailbox keeps no copy or the rule deletes the message.
include "m365";
params as $p
| .UserId as $u
| .OrganizationName as $org
| (if .Operation == "Set-Mailbox" then [$p.ForwardingSmtpAddress, $p.ForwardingAddress]
   elif .Operation == "New-InboxRule" or .Operation == "Set-InboxRule" then [$p.ForwardTo, $p.ForwardAsAttachmentTo, $p.RedirectTo]
   elif .Operation == "UpdateInboxRules"
   then [.OperationProperties[]? | objects
         | select(((.Name // "") | ci_any(["forward", "redirect"]))
                  or ((.Name // "") == "RuleActions" and (.Value | ci_any(["forward", "redirect"]))))
         | .Value | strings | [scan("[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")] | join(";")]
   else [] end) as $values
| [$values[] | addresses[] | select(is_external_addr($u; $org))] as $targets
| select($targets | length > 0)
| {
    Operation,
    UserId,
    ip: actor_ip,
    targets: ($targets | map(ascii_downcase) | unique),
    rule: ($p.Name // null),
    stealthy: (($p.DeliverToMailboxAndForward | flag_value) == "false" or ($p.DeleteMessage | flag_value) == "true")
  }
