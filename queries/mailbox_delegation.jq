# title: Mailbox access delegated or Exchange role assigned
# table: cloud.office365.management.exchange
# severity: medium
# operations: Add-MailboxPermission, Add-RecipientPermission, Set-Mailbox, New-ManagementRoleAssignment, Add-MailboxFolderPermission
# fields: UserId, Parameters, Operation, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, mailbox, grantee
# mitre: T1098.002
# description: FullAccess, SendAs, SendOnBehalf, Owner/Editor folder permissions and
#   new management role assignments, by a person (system accounts are left out).
include "m365";
select((.UserId | devo_has("NT AUTHORITY")) | not)
| params as $p
| select(
    (.Operation == "Add-MailboxPermission" and ($p.AccessRights | ci_contains("fullaccess")))
    or .Operation == "Add-RecipientPermission"
    or (.Operation == "Set-Mailbox" and $p.GrantSendOnBehalfTo != null)
    or .Operation == "New-ManagementRoleAssignment"
    or (.Operation == "Add-MailboxFolderPermission" and (($p.AccessRights // "") | ci_any(["owner", "editor", "fullaccess"]))))
| {
    Operation,
    UserId,
    ip: actor_ip,
    mailbox: ($p.Identity // .ObjectId // null),
    grantee: ($p.User // $p.Trustee // $p.GrantSendOnBehalfTo // $p.Role // null),
    rights: ($p.AccessRights // null)
  }
