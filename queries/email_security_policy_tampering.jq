# title: Email protection policy removed or disabled
# table: cloud.office365.management
# severity: high
# operations: Remove-AntiPhishPolicy, Remove-AntiPhishRule, Disable-AntiPhishRule, Remove-SafeLinksPolicy, Remove-SafeLinksRule, Disable-SafeLinksRule, Remove-SafeAttachmentPolicy, Remove-SafeAttachmentRule, Disable-SafeAttachmentRule, Remove-MalwareFilterPolicy, Remove-MalwareFilterRule, Disable-MalwareFilterRule, Remove-DlpCompliancePolicy, Remove-DlpPolicy, Set-DkimSigningConfig
# fields: Parameters, Operation, UserId, Workload, ObjectId, ActorIpAddress, ClientIP, ClientIPAddress
# group_by: UserId, Operation
# mitre: T1562.001
# description: Anti-phishing, Safe Links, Safe Attachments, malware filter and DLP policies or
#   rules removed or disabled, or DKIM signing switched off (Elastic's eight tampering rules,
#   Sentinel office_policytampering).
include "m365";
params as $p
| select(
    (.Operation | one_of(["Remove-AntiPhishPolicy", "Remove-AntiPhishRule", "Disable-AntiPhishRule",
      "Remove-SafeLinksPolicy", "Remove-SafeLinksRule", "Disable-SafeLinksRule",
      "Remove-SafeAttachmentPolicy", "Remove-SafeAttachmentRule", "Disable-SafeAttachmentRule",
      "Remove-MalwareFilterPolicy", "Remove-MalwareFilterRule", "Disable-MalwareFilterRule",
      "Remove-DlpCompliancePolicy", "Remove-DlpPolicy"]))
    or (.Operation == "Set-DkimSigningConfig" and ($p.Enabled | flag_value) == "false"))
| {Operation, UserId, Workload, ip: actor_ip, target: ($p.Identity // .ObjectId // null)}
