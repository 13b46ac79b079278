# title: Search for credentials or sensitive terms in SharePoint
# table: cloud.office365.management
# severity: medium
# operations: SearchQueryPerformed
# fields: Operation, SearchQueryText, UserId, Workload, ActorIpAddress, ClientIP, ClientIPAddress
# contains: password, passwd, secret, credential, api key, apikey, private key, payroll, salary, confidential, vpn
# group_by: UserId
# mitre: T1552
# description: SearchQueryText naming passwords, secrets, keys or payroll (Elastic
#   discovery_sharepoint_sensitive_term_search).
include "m365";
select(.Operation == "SearchQueryPerformed")
| select(.SearchQueryText | ci_any(["password", "passwd", "secret", "credential", "api key", "apikey",
    "private key", "payroll", "salary", "confidential", "vpn"]))
| {UserId, Workload, query: .SearchQueryText, ip: actor_ip}
