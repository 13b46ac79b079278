from cloud.office365.management.exchange where eq(Operation,"Remove-AuditConfigurationPolicy")
