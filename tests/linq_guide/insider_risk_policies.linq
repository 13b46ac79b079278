from cloud.office365.management.securitycompliancecenter where has(Operation,"InsiderRiskPolicy"), not has(Operation,"Get")
