# title: File or folder shared outside the organisation
# table: cloud.office365.management
# severity: medium
# operations: AnonymousLinkCreated, SharingInvitationCreated, AddedToSecureLink, SharingSet
# fields: Workload, UserId, Operation, TargetUserOrGroupType, TargetUserOrGroupName, SourceFileName, ObjectId, SourceRelativeUrl, SiteUrl, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, target
# seed: corrects onedrive_exfiltration
# mitre: T1567
# description: Anyone links, and invitations/secure links/shares to a guest or an address
#   outside the sharer's domain, in SharePoint and OneDrive. `strategic` marks the guide's
#   keyword in the file name or path (not the whole URL).
include "m365";
select(.Workload == "SharePoint" or .Workload == "OneDrive")
| .UserId as $u
| select(.Operation == "AnonymousLinkCreated"
    or ((.Operation == "SharingInvitationCreated" or .Operation == "AddedToSecureLink" or .Operation == "SharingSet")
        and ((.TargetUserOrGroupType // "") == "Guest"
             or (.TargetUserOrGroupName | (type == "string" and contains("#ext#")) or is_external_addr($u; null)))))
| {
    Operation,
    UserId,
    Workload,
    file: (.SourceFileName // .ObjectId // null),
    path: (.SourceRelativeUrl // null),
    site: (.SiteUrl // null),
    target: (if .Operation == "AnonymousLinkCreated" then "anyone" else .TargetUserOrGroupName // null end),
    ip: actor_ip,
    strategic: ((.SourceFileName | ci_contains("strategic")) or (.SourceRelativeUrl | ci_contains("strategic")))
  }
